"""The platform's upload directory schemas: its own `model-training/validation/*.json`.

The platform loads every `validation/*.json` (keyed by file stem) and walks each one's
`contents`: every listed entry must exist, and listed .json/.jsonschema files must parse.
`common` is checked at the template root, `template` at provider/category/architecture. These
are the backend's files, shipped with trainkit (trainkit/platform/backend, see its NOTICE), so
the rules cannot drift from the platform's; trainkit/layout.py's lists are tested against them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache

from trainkit.paths import PLATFORM_DIR

SCHEMA_DIR = PLATFORM_DIR / "model-training" / "validation"


@cache
def _load(filename: str) -> dict:
    return json.loads((SCHEMA_DIR / filename).read_text(encoding="utf-8"))


def common_schema() -> dict:
    """Entries required at the template root (the platform's validation/common.json)."""
    return _load("common.json")


def template_schema() -> dict:
    """Entries required in provider/category/architecture/ (validation/template.json)."""
    return _load("template.json")


SCHEMAS = {"common.json": common_schema, "template.json": template_schema}


def required_entries(schema: dict, prefix: str = "") -> Iterator[tuple[str, str]]:
    """(relative path, "file"|"directory") for every entry below `schema`, parents first."""
    for entry in schema.get("contents", []):
        rel = f"{prefix}{entry['name']}"
        yield rel, entry["type"]
        if entry["type"] == "directory":
            yield from required_entries(entry, rel + "/")
