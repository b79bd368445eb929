"""Label files as JSON without holding them in memory twice.

A COCO `labels.json` of 800k training images is ~100 MB of text: `json.dumps` makes it one
string and `write_text` one more bytes copy, both on top of the COCO dict, at the set-up's
memory peak (benchmarks/bench_setup.py at 1M images). `write_json_atomically` writes the
same bytes as `json.dumps(value)`, but encodes a dict's long lists some thousand items at a
time (still with json's C encoder), and renames a temp file into place so a reader never sees
half a file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from trainkit_runtime.atomic_files import target_mode, write_text_atomically

CHUNK_ITEMS = 10_000


def iter_json(value: Any, *, allow_nan: bool = False, chunk: int = CHUNK_ITEMS) -> Iterator[str]:
    """Pieces whose concatenation is `json.dumps(value, allow_nan=allow_nan)`."""
    if not (isinstance(value, dict) and all(type(k) is str for k in value)):
        yield json.dumps(value, allow_nan=allow_nan)
        return
    yield "{"
    for index, (key, item) in enumerate(value.items()):
        yield f"{', ' if index else ''}{json.dumps(key)}: "
        if type(item) is list and len(item) > chunk:
            yield "["
            for start in range(0, len(item), chunk):
                text = json.dumps(item[start : start + chunk], allow_nan=allow_nan)
                yield f"{', ' if start else ''}{text[1:-1]}"
            yield "]"
        else:
            yield json.dumps(item, allow_nan=allow_nan)
    yield "}"


def write_json_atomically(target: Path, value: Any, *, allow_nan: bool = False) -> None:
    """`json.dumps(value)` to `target` via a temp file in the same directory and a rename
    (atomic_files.py; no fsync: labels are rebuilt by the next setup if lost). NaN/Infinity
    are refused by default (ValueError): they are not JSON."""
    target = Path(target)
    pieces = iter_json(value, allow_nan=allow_nan)
    write_text_atomically(target, pieces, mode=target_mode(target), fsync=False)
