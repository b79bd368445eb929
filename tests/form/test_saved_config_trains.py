"""A train_config.json / export_config.json saved from the form in the browser, given to
`trainkit run --config ... --export-config ...`, trains with exactly those values."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.form import harness
from tests.support.repo import EXAMPLES_DIR
from trainkit.synthetic import write_cvat_dataset

pytestmark = pytest.mark.slow

ARCH = EXAMPLES_DIR / "Acme" / "Classification" / "TinyNet"


def test_saved_form_values_reach_training(browser, tmp_path: Path) -> None:
    out = tmp_path / "form"
    out.mkdir()
    with harness.open_form(browser, ARCH, out) as form:
        for selector, value in {
            "#root_epochs": "1",
            "#root_max-steps": "3",
            "#root_batch-size": "8",
            "#root_workers": "0",
            "#root_seed": "7",
            "#root_learning-rate": "0.005",
        }.items():
            form.page.fill(selector, value)
        form.page.fill("#export_input_shapes_0_2", "64")
        form.page.fill("#export_input_shapes_0_3", "64")
        form.page.fill("#export_opset_version", "17")
        outcome = form.save()
        assert outcome["ok"] is True, outcome
    saved = json.loads((out / "train_config.json").read_text())
    saved_export = json.loads((out / "export_config.json").read_text())
    assert (saved["max-steps"], saved["seed"], saved["learning-rate"]) == (3, 7, 0.005)

    minio, run_dir = tmp_path / "minio", tmp_path / "run"
    write_cvat_dataset(minio, 1, 40, "classification", seed=0, n_classes=2)
    command = [sys.executable, "-m", "trainkit", "run", str(ARCH), "--minio", str(minio)]
    command += ["--dataset-id", "1", "--output", str(run_dir)]
    command += ["--config", str(out / "train_config.json")]
    command += ["--export-config", str(out / "export_config.json")]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    workspace = run_dir / "workspace"
    used = json.loads((workspace / "train_config.json").read_text())  # finalized by setup.py
    assert {key: used[key] for key in saved} == saved
    assert json.loads((workspace / "export_config.json").read_text()) == saved_export
    # Training itself ran with them: max-steps=3 stopped it after 3 optimizer steps.
    with (run_dir / "output" / "logs" / "metrics.csv").open() as handle:
        steps = {int(row["step"]) for row in csv.DictReader(handle) if row.get("step")}
    assert max(steps) <= 3, steps
    assert "max_steps=3" in proc.stdout
    assert (run_dir / "output" / "model.onnx").is_file()
