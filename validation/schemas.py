"""validation/common.json and validation/template.json, generated from trainkit/layout.py.

The platform loads every `validation/*.json` (keyed by file stem) and walks each one's
`contents`: every listed entry must exist, and listed .json/.jsonschema files must parse. Each
file holds one directory node in the shape `tree -J` prints
(`{"type": "directory", "name": ".", "contents": [{"type": "file", "name": ...}, ...]}`),
i.e. the first element of tree's output list without the trailing report object, because the
platform indexes `schema["contents"]` directly.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from trainkit import layout

SCHEMA_DIR = Path(__file__).resolve().parent


def _file(name: str) -> dict:
    return {"type": "file", "name": name}


def _directory(name: str, contents: list[dict]) -> dict:
    return {
        "type": "directory",
        "name": name,
        "contents": sorted(contents, key=lambda e: e["name"]),
    }


def common_schema() -> dict:
    """Files required at the template root."""
    return _directory(".", [_file(n) for n in layout.ROOT_FILES])


def template_schema() -> dict:
    """Files required in provider/category/architecture/."""
    return _directory(
        ".",
        [
            _directory(layout.CONFIG_DIR, [_file(n) for n in layout.CONFIG_FILES]),
            _directory(layout.DOCKER_DIR, [_file(n) for n in layout.DOCKER_FILES]),
        ],
    )


SCHEMAS = {"common.json": common_schema, "template.json": template_schema}


def render(schema: dict) -> str:
    return json.dumps(schema, indent=2) + "\n"


def write_schemas(directory: Path = SCHEMA_DIR) -> list[Path]:
    written = []
    for filename, build in SCHEMAS.items():
        path = directory / filename
        path.write_text(render(build()), encoding="utf-8")
        written.append(path)
    return written


def required_entries(schema: dict, prefix: str = "") -> Iterator[tuple[str, str]]:
    """(relative path, "file"|"directory") for every entry below `schema`, parents first."""
    for entry in schema.get("contents", []):
        rel = f"{prefix}{entry['name']}"
        yield rel, entry["type"]
        if entry["type"] == "directory":
            yield from required_entries(entry, rel + "/")
