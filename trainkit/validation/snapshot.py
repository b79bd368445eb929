"""Directory mode as a closed world: copy a template directory's regular files into a temp dir
(what extracting its ZIP would give) and run every check on the copy.

Each entry is `lstat`ed, never followed: symlinks, FIFOs, device nodes and sockets are reported
and neither opened nor followed (opening a FIFO blocks; a symlink reads a file outside the
template). Regular files are read through `read_regular_file` (O_NOFOLLOW, O_NONBLOCK, fstat),
so an entry swapped between the lstat and the open is refused too. The ZIP limits (entries,
bytes per file and in total) and the entry-name rules apply, so a directory cannot make the
validator do more work than a ZIP could. Directories `trainkit package` leaves out (caches,
outputs, datasets) are kept empty: the structure checks still warn about them.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from trainkit import layout
from trainkit.validation.report import ARCHIVE, Report
from trainkit.validation.zipsafety import Limits, name_key, name_problem
from trainkit_runtime.bounded_json import NotARegularFile, read_regular_file

_KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), f"mode {oct(stat.S_IFMT(mode))}")


def snapshot_directory(
    source: Path, dest: Path, shown: str, report: Report, limits: Limits
) -> bool:
    """Copy `source` (a directory, not followed if a symlink) into `dest` (new). `shown` is how
    `source` appears in findings. False (with an ERROR) when a limit is exceeded."""
    if source.is_symlink() or not source.is_dir():
        report.error(shown, "not a directory (or a symlink to one); not followed")
        return False
    dest.mkdir(parents=True)
    entries = 0
    total = 0
    stack: list[tuple[Path, Path, str]] = [(source, dest, shown)]
    while stack:
        src_dir, dst_dir, where = stack.pop()
        try:
            with os.scandir(src_dir) as it:
                children = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            report.error(where, f"cannot list directory: {exc.strerror}")
            continue
        seen: dict[str, str] = {}
        for entry in children:
            entries += 1
            if entries > limits.max_entries:
                report.error(ARCHIVE, f"more than {limits.max_entries} entries; not validated")
                return False
            rel = f"{where}/{entry.name}"
            if problem := name_problem(entry.name):
                report.error(rel, problem)
                continue
            twin = seen.get(name_key(entry.name))
            if twin is not None:
                report.error(
                    rel,
                    f"same name as {twin!r} after Unicode normalisation (NFC) and case "
                    "folding; they collide when extracted on macOS or Windows",
                )
                continue
            seen[name_key(entry.name)] = entry.name
            try:
                mode = entry.stat(follow_symlinks=False).st_mode
            except OSError as exc:
                report.error(rel, f"cannot stat: {exc.strerror}")
                continue
            target = dst_dir / entry.name
            if stat.S_ISLNK(mode):
                report.error(rel, "symlink; a template must not contain symlinks (not followed)")
            elif stat.S_ISDIR(mode):
                target.mkdir()
                if entry.name not in layout.EXCLUDED_DIR_NAMES:
                    stack.append((Path(entry.path), target, rel))
            elif stat.S_ISREG(mode):
                try:
                    data = read_regular_file(entry.path, limits.max_entry_bytes)
                except NotARegularFile:
                    report.error(rel, "changed into a non-regular file while being read; not read")
                    continue
                except OSError as exc:
                    report.error(rel, f"cannot read: {exc.strerror}")
                    continue
                if len(data) > limits.max_entry_bytes:
                    report.error(rel, f"larger than the limit {limits.max_entry_bytes} bytes")
                    return False
                total += len(data)
                if total > limits.max_total_bytes:
                    report.error(ARCHIVE, f"more than {limits.max_total_bytes} bytes in total")
                    return False
                target.write_bytes(data)
            else:
                report.error(
                    rel,
                    f"not a regular file ({_kind(mode)}); a template holds only files and "
                    "directories; not opened",
                )
    return True
