"""The validator applies the platform's own validation/*.json, and trainkit/layout.py's lists of
required files agree with them (layout is what `trainkit new`/`package` produce)."""

import json

from trainkit import layout
from trainkit.validation import schemas


def test_schemas_are_the_platforms_files_loaded_like_the_platform_loads_them():
    # The platform: every validation/*.json under model-training/, keyed by stem.
    loaded = {p.stem: json.loads(p.read_text()) for p in schemas.SCHEMA_DIR.rglob("*.json")}
    assert set(loaded) == {"common", "template"}
    assert loaded["common"] == schemas.common_schema()
    assert loaded["template"] == schemas.template_schema()
    assert schemas.SCHEMA_DIR.parts[-4:] == ("platform", "backend", "model-training", "validation")


def test_layout_lists_equal_the_platforms_required_entries():
    common = dict(schemas.required_entries(schemas.common_schema()))
    assert common == {name: "file" for name in layout.ROOT_FILES}
    template = dict(schemas.required_entries(schemas.template_schema()))
    expected = {layout.CONFIG_DIR: "directory", layout.DOCKER_DIR: "directory"}
    expected |= {f"{layout.CONFIG_DIR}/{n}": "file" for n in layout.CONFIG_FILES}
    expected |= {f"{layout.DOCKER_DIR}/{n}": "file" for n in layout.DOCKER_FILES}
    assert template == expected
