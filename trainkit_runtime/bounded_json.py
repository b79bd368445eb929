"""JSON from files a user or a template supplies, with bounded work and no silent surprises.

``json.loads`` alone turns a 100k-deep ``[[[[...`` into a ``RecursionError`` traceback, keeps
the last of two duplicate keys without a word, and accepts ``NaN``/``Infinity``, which are not
JSON (other parsers, e.g. the platform's browser form, reject them). :func:`loads` refuses all
of that, and oversized input, with one :class:`JsonLimitError` line. Standard library only
(part of the runtime: the validator, ``trainkit run`` and the container all use it).
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

__all__ = [
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "JsonLimitError",
    "JsonSyntaxError",
    "NotARegularFile",
    "depth",
    "load_file",
    "loads",
    "read_regular_file",
]

# Nesting of arrays/objects: a form schema with nested objects and if/then needs well below 32.
MAX_DEPTH = 64
# A config file, schema or form value file is a few KiB; 8 MiB leaves room and bounds memory.
MAX_FILE_BYTES = 8 * 1024 * 1024


class JsonLimitError(ValueError):
    """Input that is not plain, bounded JSON; the message names the source and the problem."""


class JsonSyntaxError(JsonLimitError):
    """Not JSON at all (as opposed to JSON beyond the limits)."""


class NotARegularFile(OSError):
    """A path that is a FIFO, device, socket, directory or (unless allowed) symlink: opening
    or reading it could block forever or read what the input should not reach."""


def read_regular_file(path: str | Path, max_bytes: int, *, follow_symlinks: bool = False) -> bytes:
    """At most max_bytes + 1 bytes of `path`, only if it is a regular file: opened with
    O_NONBLOCK (a FIFO cannot block the open) and O_NOFOLLOW, then checked with fstat."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    if not follow_symlinks:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if not follow_symlinks and Path(path).is_symlink():
            raise NotARegularFile(f"{path}: is a symlink; not followed") from None
        raise exc
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotARegularFile(f"{path}: not a regular file ({_kind(mode)}); not read")
        chunks = []
        remaining = max_bytes + 1
        while remaining > 0:
            chunk = os.read(fd, min(remaining, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISLNK, "a symlink"),
    ):
        if test(mode):
            return name
    return f"mode {oct(stat.S_IFMT(mode))}"


def depth(value: Any) -> int:
    """Nesting depth of a parsed value (a scalar is 0), without recursion."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children)
    return deepest


def _pairs_without_duplicates(source: str):
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in pairs:
            if key in result:
                raise JsonLimitError(
                    f"{source}: duplicate key {key!r} (JSON parsers disagree on which value wins)"
                )
            result[key] = value
        return result

    return hook


def _refuse_constant(source: str):
    def hook(name: str) -> Any:
        raise JsonLimitError(f"{source}: {name} is not a JSON number (use a finite number)")

    return hook


def loads(
    data: str | bytes,
    source: str = "JSON",
    *,
    max_depth: int = MAX_DEPTH,
    max_bytes: int = MAX_FILE_BYTES,
    strict: bool = True,
) -> Any:
    """Parse `data`; JsonLimitError for oversized, too deep or (strict) duplicate-key and
    non-finite input, and for plain syntax errors (with line and column)."""
    size = len(data)
    if size > max_bytes:
        raise JsonLimitError(f"{source}: {size} bytes, more than the limit {max_bytes}")
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JsonSyntaxError(
                f"{source}: not UTF-8 ({exc.reason} at byte {exc.start})"
            ) from None
    hooks: dict[str, Any] = {}
    if strict:
        hooks = {
            "object_pairs_hook": _pairs_without_duplicates(source),
            "parse_constant": _refuse_constant(source),
        }
    try:
        value = json.loads(data, **hooks)
    except RecursionError:
        raise JsonLimitError(f"{source}: nested deeper than the limit {max_depth}") from None
    except json.JSONDecodeError as exc:
        raise JsonSyntaxError(
            f"{source}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    if depth(value) > max_depth:
        raise JsonLimitError(f"{source}: nested deeper than the limit {max_depth}")
    return value


def load_file(
    path: str | Path, source: str | None = None, *, follow_symlinks: bool = True, **limits: Any
) -> Any:
    """:func:`loads` of a regular file (see read_regular_file: a FIFO or device is never
    opened for reading); OSError as is."""
    data = read_regular_file(
        path, limits.get("max_bytes", MAX_FILE_BYTES), follow_symlinks=follow_symlinks
    )
    return loads(data, source or str(path), **limits)
