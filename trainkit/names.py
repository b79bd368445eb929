"""The one rule for provider, category and architecture names.

`trainkit package`/package.sh, the validator and the cookiecutter pre-gen hook (which keeps a
copy of NAME_PATTERN because hooks cannot import trainkit; a test keeps the copies equal) all
apply it. Names become directory names in the ZIP, image names on the platform and Python-free
path segments in shell commands, so spaces and other specials are rejected, not escaped.
"""

from __future__ import annotations

import re

NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]{0,63}$"
NAME_KINDS = ("provider", "category", "architecture")

_NAME_RE = re.compile(NAME_PATTERN)


def name_error(kind: str, value: str) -> str | None:
    """The message for an invalid `kind` name, or None when `value` is valid."""
    if _NAME_RE.fullmatch(value):
        return None
    hint = " (spaces are not allowed)" if any(c.isspace() for c in value) else ""
    return f"{kind} {value!r} must match {NAME_PATTERN}{hint}"


def is_valid_name(value: str) -> bool:
    return _NAME_RE.fullmatch(value) is not None
