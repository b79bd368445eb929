"""`trainkit validate` reports the constructs the platform's form mishandles as WARNINGs (one
line each, naming the property) and stays quiet for the committed examples."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.repo import EXAMPLES_DIR

EXAMPLE = EXAMPLES_DIR / "Acme" / "Classification" / "TinyNet"


def validate(target: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trainkit", "validate", str(target)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_examples_have_no_form_warnings() -> None:
    arches = sorted(EXAMPLES_DIR.glob("*/*/*"))
    assert [a.name for a in arches] == ["TinyNet", "TinyDet", "TinySeg"]
    for arch in arches:
        result = validate(arch)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "platform's form" not in result.stdout, result.stdout


def test_dropped_values_are_warned(tmp_path: Path) -> None:
    arch = tmp_path / "Acme" / "Classification" / "Warned"
    shutil.copytree(EXAMPLE, arch)
    schema_path = arch / "config" / "config.jsonschema"
    schema = json.loads(schema_path.read_text())
    schema["properties"]["axes"] = {"type": "object", "default": {"image": {"0": "batch"}}}
    schema["properties"]["head"] = {
        "type": "object",
        "properties": {"drop.rate": {"type": "number", "default": 0.1}},
    }
    schema_path.write_text(json.dumps(schema))
    result = validate(arch)
    lines = [line for line in result.stdout.splitlines() if "platform's form" in line]
    assert len(lines) == 2, result.stdout
    assert lines[0].startswith("WARNING ") and "'axes'" in lines[0] and "empties it" in lines[0]
    assert lines[1].startswith("WARNING ") and "'head/drop.rate'" in lines[1]
    assert "drops its value" in lines[1]
