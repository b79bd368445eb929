"""The build context `trainkit run` assembles, its config handling, and the platform's score
algorithm (fast: no training)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support.repo import EXAMPLES_DIR
from trainkit import layout, vendor, workspace
from trainkit.errors import TrainkitError
from trainkit.platform import score
from trainkit.run import parse_assignments
from trainkit_runtime import schema_args

EXAMPLE = EXAMPLES_DIR / "Acme" / "Classification" / "TinyNet"


def test_build_context_is_laid_out_like_the_platforms(tmp_path):
    dest = workspace.assemble_build_context(EXAMPLE, tmp_path / "ctx")
    names = {p.name for p in dest.iterdir()}
    assert {f"{module}.py" for module in layout.LEGACY_MODULES} <= names
    assert {*layout.ENTRY_SCRIPTS, layout.RUNTIME_PACKAGE} <= names
    assert {p.name for p in (EXAMPLE / "docker").iterdir()} <= names
    assert {"custom.json", "presets.json", "export_config.json", "train_config.json"} <= names
    assert "config.jsonschema" not in names  # the platform does not put it there either
    schema = json.loads((EXAMPLE / "config" / "config.jsonschema").read_text())
    defaults = schema_args.schema_defaults(schema)
    assert json.loads((dest / "train_config.json").read_text()) == defaults
    # the runtime copy is the installed runtime, byte for byte; docker/ files are the example's
    for rel, source in vendor.runtime_files():
        assert (dest / rel).read_bytes() == source.read_bytes(), rel
    for path in (EXAMPLE / "docker").iterdir():
        assert (dest / path.name).read_bytes() == path.read_bytes(), path.name


def test_legacy_module_names_alias_the_runtime_in_a_build_context(tmp_path):
    """A stock setup.py's `import dataset` / `from config import ...` get trainkit's modules."""
    dest = workspace.assemble_build_context(EXAMPLE, tmp_path / "ctx")
    code = (
        "import config, cvat_dataset, dataset, export; "
        "import trainkit_runtime.configuration as c, trainkit_runtime.dataset as d; "
        "print(config is c, dataset is d, cvat_dataset.__name__, export.export_model.__module__)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=dest, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["True", "True", "trainkit_runtime.cvat_dataset", "trainkit_runtime.export"]


def test_build_context_is_rebuilt_but_never_over_foreign_files(tmp_path):
    dest = workspace.assemble_build_context(EXAMPLE, tmp_path / "ctx")
    (dest / "stale.txt").write_text("from an earlier run")
    workspace.assemble_build_context(EXAMPLE, dest, {**_defaults(), "epochs": 2})
    assert not (dest / "stale.txt").exists()
    assert json.loads((dest / "train_config.json").read_text())["epochs"] == 2
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(TrainkitError, match="not made by trainkit"):
        workspace.assemble_build_context(EXAMPLE, foreign)
    assert (foreign / "notes.txt").read_text() == "keep me"


def _defaults() -> dict:
    return workspace.train_config(EXAMPLE)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"epochs": 0}, "epochs: 0 is less than the minimum of 1"),
        ({"learning-rate": "fast"}, "learning-rate: 'fast' is not of type 'number'"),
        ({"accelerator": "tpu"}, "accelerator: 'tpu' is not one of"),
    ],
)
def test_bad_form_values_name_the_key(overrides, message):
    with pytest.raises(TrainkitError, match=message) as info:
        workspace.train_config(EXAMPLE, overrides)
    assert str(info.value).startswith("the platform's initial form values + --set: ")


def test_not_an_architecture_directory(tmp_path):
    with pytest.raises(TrainkitError, match="not an architecture directory"):
        workspace.architecture_parts(tmp_path)
    assert workspace.architecture_parts(EXAMPLE) == ("Acme", "Classification", "TinyNet")


def test_set_values_are_json_when_they_can_be():
    assert parse_assignments(["epochs=3", "accelerator=cpu", "augment=false", "x=[1, 2]"]) == {
        "epochs": 3,
        "accelerator": "cpu",
        "augment": False,
        "x": [1, 2],
    }


def run_cli(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "trainkit", "run", *args], cwd=cwd, capture_output=True, text=True
    )


def test_run_reports_a_missing_dataset_in_one_line(tmp_path):
    proc = run_cli(str(EXAMPLE), "--minio", str(tmp_path), "--dataset-id", "9", cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "datasets/9: no such dataset" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_run_reports_a_bad_config_value_in_one_line(tmp_path):
    (tmp_path / "datasets" / "1").mkdir(parents=True)
    # --config holds all the form's values (a saved form), here one of them out of range
    (tmp_path / "bad.json").write_text(json.dumps({**_defaults(), "batch-size": -4}))
    proc = run_cli(
        *(str(EXAMPLE), "--minio", str(tmp_path), "--dataset-id", "1"),
        *("--config", str(tmp_path / "bad.json")),
        cwd=tmp_path,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().endswith("batch-size: -4 is less than the minimum of 1")
    assert not (tmp_path / "out").exists()


def test_run_rejects_malformed_set(tmp_path):
    (tmp_path / "datasets" / "1").mkdir(parents=True)
    proc = run_cli(
        *(str(EXAMPLE), "--minio", str(tmp_path), "--dataset-id", "1", "--set", "epochs"),
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert "--set 'epochs': expected KEY=VALUE" in proc.stderr


# --- the platform's score algorithm ----------------------------------------------------------


def test_score_is_the_last_float_in_the_last_50_lines():
    regexp = r"Accuracy:\s*([0-9]+(?:\.[0-9]+)?)"
    lines = ["Accuracy: 0.1"] + [f"step {i}" for i in range(49)] + ["Accuracy: 0.87654"]
    assert score.platform_score("\n".join(lines), regexp) == 0.877
    assert score.platform_score("\n".join(["Accuracy: 0.5"] + ["x"] * 50), regexp) is None


def test_score_groups_are_flattened_and_non_floats_skipped():
    text = "mAP@0.5: 0.4\nmAP@0.5: n/a\nmAP@0.5: 0.61\n"
    assert score.platform_score(text, r"mAP@0\.5: (\S+)") == 0.61
    assert score.platform_score("a=1 b=2", r"a=(\d) b=(\d)") == 2.0
    assert score.platform_score("score\n0.25", r"score\s+([0-9.]+)") == 0.25  # spans a newline
