"""Checks for values that become file names, env lines or log lines, applied where they enter.

A dataset id ends up in ``.env`` (``DATASET_ID=<id>``), in paths and in log lines; a label name
in label files and summary lines; a provider/category/architecture name in paths and image
names. A newline in any of them writes an extra line (e.g. ``PYTHONPATH=...`` into ``.env``),
a terminal escape rewrites what the user sees. So each is checked once, where it enters
(CLI option, environment, annotation file), with one message naming the value; callers turn
:class:`ValueRefused` into their own error type. Standard library only (part of the runtime).
"""

from __future__ import annotations

import re
import unicodedata

__all__ = [
    "DATASET_ID_PATTERN",
    "MAX_DATASET_ID_LENGTH",
    "MAX_LABEL_NAME_LENGTH",
    "ValueRefused",
    "check_dataset_id",
    "check_label_name",
    "check_text",
    "control_characters",
    "printable",
]

MAX_DATASET_ID_LENGTH = 128
MAX_LABEL_NAME_LENGTH = 256
# One plain path component: no separators, no leading dot, no control or non-ASCII characters.
# docker-entrypoint.sh keeps a copy of this pattern (a test keeps them equal).
DATASET_ID_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.@+=-]*$"
_DATASET_ID_RE = re.compile(DATASET_ID_PATTERN)

# Unicode categories that must never appear in a name: controls (C0, DEL, C1), format characters
# (bidi overrides such as U+202E, zero-width joiners), line/paragraph separators (U+2028/9),
# surrogates, private use and unassigned code points.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


class ValueRefused(ValueError):
    """A value that must not become a file name, an env line or a log line; the message names
    the kind of value and shows it escaped (so the message itself stays one line)."""


def control_characters(text: str) -> list[str]:
    """The distinct refused characters of `text` as ``U+XXXX``, in order of appearance."""
    found: dict[str, None] = {}
    for char in text:
        if unicodedata.category(char) in _REFUSED_CATEGORIES:
            found[f"U+{ord(char):04X}"] = None
    return list(found)


def printable(text: str, limit: int = 120) -> str:
    """`text` quoted for one line of output: control, bidi and separator characters escaped
    (``\\n``, ``\\x1b``, ``\\u202e``), longer texts cut with ``...`` (after escaping)."""
    out = []
    for char in text:
        if unicodedata.category(char) in _REFUSED_CATEGORIES or char == "\\":
            out.append(char.encode("unicode_escape").decode("ascii"))
        else:
            out.append(char)
    shown = "".join(out)
    if len(shown) > limit:
        shown = shown[:limit] + "..."
    return f"'{shown}'"


def _named(kind: str, text: str, limit: int = 120) -> str:
    """`DATASET_ID='x'` for an environment variable, `--id 'x'` / `label name 'x'` else."""
    joiner = "=" if re.fullmatch(r"[A-Z][A-Z0-9_]*", kind) else " "
    return f"{kind}{joiner}{printable(text, limit)}"


def check_text(kind: str, value: object, max_length: int) -> str:
    """`value` if it is a non-blank one-line string of at most `max_length` characters without
    control/bidi/separator characters; else ValueRefused naming `kind` and the value."""
    if not isinstance(value, str):
        raise ValueRefused(f"{kind} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise ValueRefused(f"{kind} is empty")
    if len(value) > max_length:
        raise ValueRefused(
            f"{_named(kind, value, 40)} is {len(value)} characters long, "
            f"more than the limit {max_length}"
        )
    bad = control_characters(value)
    if bad:
        raise ValueRefused(
            f"{_named(kind, value)} contains control, bidi or line-separator characters "
            f"({', '.join(bad[:5])}); it would become an extra line or a hidden edit"
        )
    return value


def check_dataset_id(value: object, kind: str = "DATASET_ID") -> str:
    """A dataset id: one plain directory name (letters, digits, ``_ . @ + = -``; no ``/``, no
    leading dot), at most MAX_DATASET_ID_LENGTH characters, no control characters."""
    if not isinstance(value, str):
        raise ValueRefused(f"{kind} must be a string, got {type(value).__name__}")
    text = value
    if len(text) > MAX_DATASET_ID_LENGTH:
        raise ValueRefused(
            f"{_named(kind, text, 40)} is {len(text)} characters long, more than the limit "
            f"{MAX_DATASET_ID_LENGTH}"
        )
    if not _DATASET_ID_RE.fullmatch(text) or text in {".", ".."}:
        raise ValueRefused(
            f"{_named(kind, text)} is not a plain directory name "
            "(letters, digits, '_', '.', '@', '+', '=', '-'; no '/', no '..', no leading dot)"
        )
    return text


def check_label_name(value: object, kind: str = "label name") -> str:
    """A CVAT label name: any one-line text (spaces allowed) of at most MAX_LABEL_NAME_LENGTH
    characters without control, bidi or separator characters; surrounding blanks stripped."""
    return check_text(kind, value, MAX_LABEL_NAME_LENGTH).strip()
