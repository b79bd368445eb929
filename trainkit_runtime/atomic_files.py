"""Write a file so that a reader sees the old file or the complete new one, never half of one.

Why one place: the run's state files (lifecycle.py), the rewritten `train_config.json`
(configuration.py), the COCO labels (json_files.py) and the saved form values
(trainkit/form/files.py) all need the same steps, and a temp file + rename done slightly
differently in each (a fixed temp name two writers share, no fsync, 0600 files another user
cannot read) is a bug in one of them. The temp file lives in the target's directory, because
`os.replace` is atomic only within one filesystem.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path


def target_mode(path: Path) -> int:
    """The permissions a rewrite of `path` should keep: its own, or the umask default of a new
    file (what `open(path, "w")` would give). `mkstemp` alone makes 0600 files, which another
    user (e.g. after a privilege drop) could not read."""
    try:
        return path.stat().st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def write_text_atomically(
    path: Path,
    text: str | Iterable[str],
    *,
    mode: int | None = None,
    exclusive: bool = False,
    fsync: bool = True,
    before_replace: Callable[[], None] | None = None,
) -> bool:
    """Write `text` (a string, or pieces written one after another, so a large file is never
    one string) to `path` via a temp file in its directory and a rename.

    `mode`: the file's permissions (None: mkstemp's 0600). `exclusive`: keep an existing file
    (the first writer wins) and return False. `fsync`: flush to disk before the rename (off for
    large files that are rebuilt anyway when lost). `before_replace`: called right before the
    rename (a last check of the target); what it raises leaves `path` untouched. On any error
    the temp file is removed and `path` is as it was."""
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for piece in (text,) if isinstance(text, str) else text:
                fh.write(piece)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        if mode is not None:
            tmp.chmod(mode)
        if before_replace is not None:
            before_replace()
        if not exclusive:
            tmp.replace(path)
            return True
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        tmp.unlink(missing_ok=True)
