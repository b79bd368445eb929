"""Writing the saved form values: atomically, and never through anything but a regular file.

The server writes into a directory the user chose (`--out`); a file name there that is a
symlink, a directory or a device must not be followed or replaced, and a reader (e.g. a
`trainkit run` started meanwhile) must never see half a JSON file.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

from trainkit.errors import TrainkitError
from trainkit_runtime.atomic_files import write_text_atomically


class UnsafeTarget(TrainkitError):
    """The file to write exists and is not a regular file."""


def check_target(path: Path) -> None:
    """Raise UnsafeTarget unless `path` is absent or a regular file (symlinks are refused)."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISREG(mode):
        kind = "a symlink" if stat.S_ISLNK(mode) else "not a regular file"
        raise UnsafeTarget(f"{path}: exists and is {kind}; not overwriting it")


def write_json_atomic(path: Path, data: Any) -> None:
    """Write `data` as indented JSON to `path` via a temp file in the same directory + rename,
    checking the target again right before the rename."""
    check_target(path)
    text = json.dumps(data, indent=2) + "\n"
    write_text_atomically(path, text, mode=0o644, before_replace=lambda: check_target(path))
