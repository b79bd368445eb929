"""`trainkit package` (and ./package.sh): build train-container-publish.zip for one architecture.

The ZIP holds one top-level directory, the template root, with the files the platform requires
there (layout.ROOT_FILES: the legacy shims and the entry scripts; the platform never runs them,
it builds with its own common/) and provider/category/architecture/{config,docker}. docker/ gets
the installed runtime (trainkit/vendor.py: trainkit_runtime/ plus docker-entrypoint.sh and
mount-s3.sh, which win over the platform's stock copies in its build context), so the image runs
trainkit's runtime of this version. Caches, outputs, checkpoints and data are left out; symlinks
are refused. Entries are sorted and timestamped
1980-01-01, so the same inputs give the same bytes. The ZIP is written to a temp file beside
the target, validated, and only then moved over the target (a failing package never replaces
a good ZIP).
"""

from __future__ import annotations

import argparse
import fnmatch
import logging
import os
import shutil
import stat
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from trainkit import layout, paths, vendor
from trainkit.errors import TrainkitError, UsageError
from trainkit.names import NAME_KINDS, name_error

log = logging.getLogger(__name__)

ROOT_DIR_NAME = Path(layout.ZIP_NAME).stem  # "train-container-publish", like the stock script
FIXED_DATE = (1980, 1, 1, 0, 0, 0)
LARGE_FILE_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class Entry:
    arcname: str
    source: Path | None  # None for a directory entry
    executable: bool = False
    data: bytes | None = None  # generated content instead of a source file


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "package",
        help="build train-container-publish.zip for one architecture (= ./package.sh)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for kind in NAME_KINDS:
        parser.add_argument(kind, help=f"{kind} name (letters, digits, _ and -)")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(layout.ZIP_NAME),
        help="ZIP to write (default: %(default)s)",
    )
    parser.add_argument(
        "--templates",
        type=Path,
        default=paths.DEFAULT_TEMPLATES_DIR,
        help="directory holding provider/category/architecture (default: ./templates)",
    )
    parser.set_defaults(func=run)


def _excluded(path: Path) -> bool:
    if path.is_dir() and not path.is_symlink():
        return path.name in layout.EXCLUDED_DIR_NAMES
    return any(fnmatch.fnmatchcase(path.name, p) for p in layout.EXCLUDED_FILE_PATTERNS)


def _file_entry(arcname: str, path: Path) -> Entry:
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode):
        raise TrainkitError(f"{path}: is a symlink; package refuses symlinks (copy the file)")
    if not stat.S_ISREG(info.st_mode):
        raise TrainkitError(f"{path}: not a regular file")
    if info.st_size > LARGE_FILE_BYTES:
        log.warning(
            "warning: %s is %.1f MiB; datasets and weights do not belong in a template",
            path,
            info.st_size / 2**20,
        )
    executable = bool(info.st_mode & stat.S_IXUSR) or path.name in layout.ENTRY_SCRIPTS
    return Entry(arcname, path, executable)


def _tree_entries(base: Path, arc_base: str) -> list[Entry]:
    entries = []
    for current, dirnames, filenames in os.walk(base):
        here = Path(current)
        for name in list(dirnames):
            path = here / name
            if path.is_symlink():
                raise TrainkitError(f"{path}: is a symlink; package refuses symlinks")
            if _excluded(path):
                log.debug("skipping %s", path)
                dirnames.remove(name)
        for name in filenames:
            path = here / name
            if _excluded(path) and not path.is_symlink():
                log.debug("skipping %s", path)
                continue
            rel = path.relative_to(base).as_posix()
            entries.append(_file_entry(f"{arc_base}/{rel}", path))
    return entries


def _root_entries() -> list[Entry]:
    """layout.ROOT_FILES at the template root: shell scripts from the runtime, Python shims."""
    scripts = dict(vendor.runtime_files())
    shims = vendor.legacy_shims()
    entries = []
    for name in layout.ROOT_FILES:
        arcname = f"{ROOT_DIR_NAME}/{name}"
        if name in scripts:
            entries.append(_file_entry(arcname, scripts[name]))
        elif name in shims:
            entries.append(Entry(arcname, None, False, shims[name].encode("utf-8")))
        else:
            raise TrainkitError(
                f"{name}: required at the template root, but trainkit has no such file"
            )
    return entries


def _runtime_entries(docker_arc: str, docker_dir: Path) -> list[Entry]:
    """The runtime copy in docker/; a same-named file of the architecture is an error."""
    entries = []
    for rel, source in vendor.runtime_files():
        own = docker_dir / rel
        if own.exists() or own.is_symlink():
            raise TrainkitError(
                f"{own}: trainkit's runtime provides this file in docker/ when packaging; "
                "remove the architecture's copy"
            )
        entries.append(_file_entry(f"{docker_arc}/{rel}", source))
    return entries


def collect_entries(
    provider: str, category: str, architecture: str, templates: Path
) -> list[Entry]:
    """Every file (and its parent directories) the ZIP holds, sorted by name."""
    arch = templates / provider / category / architecture
    if not arch.is_dir():
        raise TrainkitError(
            f"{arch}: no such architecture directory (expected "
            f"{templates}/<provider>/<category>/<architecture>)"
        )
    files = _root_entries()
    arch_arc = f"{ROOT_DIR_NAME}/{provider}/{category}/{architecture}"
    for sub in (layout.CONFIG_DIR, layout.DOCKER_DIR):
        if not (arch / sub).is_dir() or (arch / sub).is_symlink():
            raise TrainkitError(f"{arch / sub}: missing directory (an architecture has {sub}/)")
        files += _tree_entries(arch / sub, f"{arch_arc}/{sub}")
    files += _runtime_entries(f"{arch_arc}/{layout.DOCKER_DIR}", arch / layout.DOCKER_DIR)
    for extra in sorted(arch.iterdir()):
        # hidden entries (e.g. the .trainkit-answers.json record of `trainkit new`) are the
        # developer's own and never meant for the platform: skipped without a word
        if extra.name not in (layout.CONFIG_DIR, layout.DOCKER_DIR) and extra.name[:1] != ".":
            log.info("not packaged: %s (only config/ and docker/ are)", extra)
    dirs = {str(Path(e.arcname).parent.as_posix()) for e in files}
    for d in list(dirs):
        dirs |= {p.as_posix() for p in Path(d).parents if p.as_posix() != "."}
    entries = files + [Entry(d + "/", None) for d in dirs]
    return sorted(entries, key=lambda e: e.arcname)


def write_tree(entries: list[Entry], dest: Path) -> Path:
    """The packaged form as files under dest, as the ZIP extracts (`trainkit run` builds from
    it the way the platform builds from an upload); returns the template root in dest."""
    for entry in entries:
        target = dest / entry.arcname
        if entry.source is None and entry.data is None:
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if entry.data is not None:
            target.write_bytes(entry.data)
        else:
            shutil.copyfile(entry.source, target)
        target.chmod(0o755 if entry.executable else 0o644)
    return dest / ROOT_DIR_NAME


def write_zip(entries: list[Entry], fh) -> None:
    with zipfile.ZipFile(fh, "w") as zf:
        for entry in entries:
            info = zipfile.ZipInfo(entry.arcname, date_time=FIXED_DATE)
            info.create_system = 3  # Unix, so the mode bits below mean the same everywhere
            if entry.source is None and entry.data is None:
                info.external_attr = (stat.S_IFDIR | 0o755) << 16 | 0x10
                zf.writestr(info, b"")
                continue
            mode = 0o755 if entry.executable else 0o644
            info.external_attr = (stat.S_IFREG | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            if entry.data is not None:
                zf.writestr(info, entry.data)
                continue
            info.file_size = entry.source.stat().st_size
            with entry.source.open("rb") as src, zf.open(info, "w") as dst:
                shutil.copyfileobj(src, dst, 1024 * 1024)


def check_out_path(out: Path) -> None:
    """`--out` must be a new path or a regular file (replaced atomically). A directory, a
    symlink, a FIFO or a device node is refused: replacing one would destroy what it is."""
    try:
        mode = out.lstat().st_mode
    except FileNotFoundError:
        if not out.parent.is_dir():
            raise UsageError(f"--out {out}: directory {out.parent} does not exist") from None
        return
    if stat.S_ISDIR(mode):
        raise UsageError(f"--out {out}: is a directory")
    if not stat.S_ISREG(mode):
        kind = "a symlink" if stat.S_ISLNK(mode) else "not a regular file"
        raise UsageError(f"--out {out}: is {kind}; refusing to replace it (nothing was written)")


def package(
    provider: str,
    category: str,
    architecture: str,
    out: Path,
    templates: Path = paths.DEFAULT_TEMPLATES_DIR,
) -> int:
    """Build, validate, then atomically write `out`. Returns the number of files packaged."""
    from trainkit.validation import validate_path  # validation imports trainkit.layout

    for kind, value in zip(NAME_KINDS, (provider, category, architecture), strict=True):
        if message := name_error(kind, value):
            raise UsageError(message)
    entries = collect_entries(provider, category, architecture, templates)
    out = out.absolute()
    check_out_path(out)

    fd, tmp_name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            write_zip(entries, fh)
        report = validate_path(tmp)
        for finding in report.findings:
            print(finding, file=sys.stderr)
        if not report.ok:
            raise TrainkitError(
                f"the package fails validation ({len(report.errors)} error(s) above); "
                f"{out} was left unchanged"
            )
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o666 & ~umask)
        check_out_path(out)  # again: it may have changed while the ZIP was written
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return sum(1 for e in entries if e.source is not None or e.data is not None)


def run(args: argparse.Namespace) -> int:
    count = package(args.provider, args.category, args.architecture, args.out, args.templates)
    print(f"wrote {args.out} ({count} files)")
    return 0
