"""The platform's structural rules (DESIGN.md §3), applied to an extracted tree.

`extract_root` is the directory the ZIP was extracted into (or, for a directory being
validated, its parent seen through a one-entry view); it must hold exactly one directory, the
template root. Messages quote the platform's own wording where it has one.
"""

from __future__ import annotations

import fnmatch
import json
import os
from dataclasses import dataclass
from pathlib import Path

from trainkit import layout
from trainkit.names import NAME_KINDS, name_error
from trainkit.platform import lookup
from trainkit.validation import schemas
from trainkit.validation.report import ARCHIVE, Report
from trainkit_runtime import bounded_json

PLATFORM_SINGLE_DIR = "Archive did not extract as a single directory."
PLATFORM_CONFIG_DIRS = "None or multiple configuration directories 'config/' found."
PLATFORM_DEPTH = (
    "Either provider, category or architecture are missing or there are additional parent "
    "directories relative to 'config/'."
)


@dataclass
class Tree:
    """What the structural checks found; `arch_dir` is None when it could not be located."""

    extract_root: Path
    root: Path
    arch_dir: Path | None

    def rel(self, path: Path) -> str:
        """A path as it appears inside the ZIP."""
        return path.relative_to(self.extract_root).as_posix()


def _walk(root: Path) -> tuple[list[Path], list[Path], list[Path]]:
    """(directories, files, symlinks) below root, sorted, never following links."""
    dirs: list[Path] = []
    files: list[Path] = []
    links: list[Path] = []
    for current, dirnames, filenames in os.walk(root):
        base = Path(current)
        for name in sorted(dirnames):
            path = base / name
            (links if path.is_symlink() else dirs).append(path)
        dirnames[:] = sorted(d for d in dirnames if not (base / d).is_symlink())
        for name in sorted(filenames):
            path = base / name
            (links if path.is_symlink() else files).append(path)
    return sorted(dirs), sorted(files), sorted(links)


def _is_excluded_file(name: str) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in layout.EXCLUDED_FILE_PATTERNS)


def _check_required(tree: Tree, base: Path, schema_file: str, report: Report) -> None:
    schema = schemas.SCHEMAS[schema_file]()
    for rel, kind in schemas.required_entries(schema):
        path = base / rel
        where = tree.rel(path)
        shown = path.relative_to(tree.root).as_posix()
        if not path.exists() and not path.is_symlink():
            report.error(where, f"Entry '{shown}' not found (required by validation/{schema_file})")
        elif kind == "file" and not path.is_file():
            report.error(where, f"Entry '{shown}' must be a file (validation/{schema_file})")
        elif kind == "directory" and not path.is_dir():
            report.error(where, f"Entry '{shown}' must be a directory (validation/{schema_file})")


def check_structure(extract_root: Path, report: Report, only: str | None = None) -> Tree | None:
    """Check the tree below `extract_root`; `only` restricts the view to one top-level entry
    (validating a template root directory in place, without its siblings)."""
    top = [only] if only is not None else sorted(p.name for p in extract_root.iterdir())
    if (
        len(top) != 1
        or not (extract_root / top[0]).is_dir()
        or (extract_root / top[0]).is_symlink()
    ):
        found = ", ".join(top) if top else "nothing"
        report.error(ARCHIVE, f"{PLATFORM_SINGLE_DIR} Top level holds: {found}")
        return None
    root = extract_root / top[0]
    tree = Tree(extract_root, root, None)
    dirs, files, links = _walk(root)

    for link in links:
        report.error(tree.rel(link), "symlink; a template must not contain symlinks")

    for d in dirs:
        if d.name in layout.EXCLUDED_DIR_NAMES and not any(
            p.name in layout.EXCLUDED_DIR_NAMES for p in d.relative_to(root).parents if p.name
        ):
            report.warning(tree.rel(d), "directory should not be packaged (cache/output/data)")
    for f in files:
        if _is_excluded_file(f.name):
            report.warning(tree.rel(f), "file should not be packaged (cache/checkpoint)")

    # The platform counts every directory with a path part named 'config'.
    config_dirs = [d for d in dirs if layout.CONFIG_DIR in d.relative_to(extract_root).parts]
    if len(config_dirs) != 1:
        detail = (
            "found none"
            if not config_dirs
            else "found " + ", ".join(f"'{tree.rel(d)}'" for d in config_dirs)
        )
        report.error(tree.rel(root), f"{PLATFORM_CONFIG_DIRS} {detail}")
    else:
        config_dir = config_dirs[0]
        arch = config_dir.parent
        parts = arch.relative_to(root).parts
        if len(parts) != 3:
            report.error(
                tree.rel(config_dir),
                f"{PLATFORM_DEPTH} config/ must be at provider/category/architecture/config, "
                f"found at depth {len(parts) + 1}",
            )
        else:
            tree.arch_dir = arch
            for kind, value, path in zip(
                NAME_KINDS, parts, (arch.parent.parent, arch.parent, arch), strict=True
            ):
                if message := name_error(kind, value):
                    report.warning(tree.rel(path), f"{message}; trainkit tools reject this name")

    _check_required(tree, root, "common.json", report)
    if tree.arch_dir is not None:
        _check_required(tree, tree.arch_dir, "template.json", report)
        check_platform_lookups(tree.arch_dir, tree.rel, report, source_tree=False)

    for f in files:
        if f.suffix in (".json", ".jsonschema"):
            check_json_file(f, f.relative_to(root).as_posix(), tree.rel(f), report)
    return tree


def check_json_file(path: Path, shown: str, where: str, report: Report) -> None:
    """The platform's check (the file parses with Python's json; its message is quoted), then
    the stricter one: no duplicate keys, no NaN/Infinity, nesting at most MAX_DEPTH. Those are
    ERRORs in config/ (the files whose values trainkit and the platform use), else WARNINGs."""
    data = path.read_bytes()
    try:
        json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        report.error(where, f"Invalid JSON file '{shown}': {exc}")
        return
    except RecursionError:
        report.error(
            where, f"Invalid JSON file '{shown}': nested too deeply for the platform's parser"
        )
        return
    try:
        bounded_json.loads(data, shown)
    except bounded_json.JsonLimitError as exc:
        in_config = layout.CONFIG_DIR in Path(shown).parts[:-1]
        add = report.error if in_config else report.warning
        add(where, f"{exc}; the platform's form and other JSON readers treat this differently")


def check_platform_lookups(
    arch: Path, rel, report: Report, *, source_tree: bool, siblings_of: Path | None = None
) -> None:
    """The backend finds an installed architecture's Dockerfile and form schema by substring
    over every file of its provider (trainkit/platform/lookup.py, the backend's own code): its
    name against its siblings and the platform's stock templates, and stray files with stem
    'config'.

    source_tree: arch is an architecture directory of a templates tree (what `trainkit package`
    would upload), not an upload (a ZIP, a template root); siblings_of: where that architecture
    is in its templates tree (arch may be a snapshot of it), whose siblings are looked at."""
    parts = arch.resolve().parts[-3:]
    try:
        files = lookup.architecture_files(arch, add_runtime=source_tree)
        others = lookup.stock_architectures(parts[0])
        if source_tree:
            others += lookup.local_siblings(siblings_of or arch, add_runtime=True)
        findings = lookup.check(lookup.Arch(*parts, files, "target"), others)
    except (OSError, ValueError) as exc:
        report.warning(rel(arch), f"the platform's file look-ups were not checked: {exc}")
        return
    for finding in findings:
        where = rel(arch / finding.file) if finding.file else rel(arch)
        (report.error if finding.level == "ERROR" else report.warning)(where, finding.message)
