"""validation/{common,template}.json are generated from trainkit/layout.py and stay in sync."""

import json
from pathlib import Path

import pytest

from trainkit import layout
from validation import schemas


@pytest.mark.parametrize("filename", sorted(schemas.SCHEMAS))
def test_committed_schema_equals_generated(filename):
    committed = (schemas.SCHEMA_DIR / filename).read_text(encoding="utf-8")
    assert committed == schemas.render(schemas.SCHEMAS[filename]()), (
        f"validation/{filename} is stale: run `python -m validation --write-schemas`"
    )


def test_write_schemas_cli_writes_both_files(tmp_path):
    from validation.cli import main

    assert main(["--write-schemas", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["common.json", "template.json"]


def test_schemas_load_like_the_platform_loads_them():
    # The platform: every validation/*.json keyed by stem, then schema["contents"] walked.
    loaded = {p.stem: json.loads(p.read_text()) for p in Path(schemas.SCHEMA_DIR).rglob("*.json")}
    assert set(loaded) == {"common", "template"}
    for schema in loaded.values():
        assert schema["type"] == "directory" and isinstance(schema["contents"], list)
    common = dict(schemas.required_entries(loaded["common"]))
    assert common == {name: "file" for name in layout.ROOT_FILES}
    template = dict(schemas.required_entries(loaded["template"]))
    expected = {layout.CONFIG_DIR: "directory", layout.DOCKER_DIR: "directory"}
    expected |= {f"{layout.CONFIG_DIR}/{n}": "file" for n in layout.CONFIG_FILES}
    expected |= {f"{layout.DOCKER_DIR}/{n}": "file" for n in layout.DOCKER_FILES}
    assert template == expected


def test_tree_j_node_shape():
    # `tree -J` prints nodes as {"type", "name", "contents"} with files as {"type", "name"}.
    node = schemas.template_schema()
    assert list(node) == ["type", "name", "contents"]
    for entry in node["contents"]:
        assert set(entry) == {"type", "name", "contents"}
        assert all(set(f) == {"type", "name"} for f in entry["contents"])
