"""`trainkit run --runtime platform` without an engine: each example, packaged and built the
backend's way (stock common/ + datasets/, the ZIP's docker/ recursively, custom/presets, the
stock export.py last, both forms' initial values), run with the stock entrypoint's commands:
exit 0, the score found the platform's way, `<stem>.onnx` served and loading in onnxruntime.
Then: the export form switched off (fallback model, reason logged), the platform's config edit
on --restart (both runtimes), and what the stock entrypoint's `source`/`eval` would expand."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.support.repo import EXAMPLES_DIR
from trainkit import platform
from trainkit.platform import MODEL_TRAINING_DIR, stock_entrypoint
from trainkit.platform import score as platform_score
from trainkit.synthetic import write_cvat_dataset

EXAMPLES = {
    "classification": ("Acme/Classification/TinyNet", 32),
    "detection": ("Acme/Detection/TinyDet", 24),
    "segmentation": ("Acme/Segmentation/TinySeg", 16),
}
QUICK = ["--set", "epochs=1", "--set", "max-steps=2", "--set", "workers=0"]


def trainkit_run(*args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "trainkit", "run", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    print(proc.stdout[-4000:], "\n--- stderr ---\n", proc.stderr[-4000:])
    return proc


def minio_with(tmp_path: Path, task: str, *ids: int) -> Path:
    minio = tmp_path / "minio"
    for dataset_id in ids:
        images = EXAMPLES[task][1]
        write_cvat_dataset(minio, dataset_id, images, task, seed=dataset_id, n_classes=2)
    return minio


def summary_value(stdout: str, field: str) -> str:
    match = re.search(rf"^  {field}:\s+(.*)$", stdout, re.M)
    assert match, stdout[-2000:]
    return match.group(1)


@pytest.mark.slow
@pytest.mark.parametrize("task", sorted(EXAMPLES))
def test_example_trains_on_the_platforms_stock_runtime(task, tmp_path):
    example = EXAMPLES_DIR / EXAMPLES[task][0]
    minio = minio_with(tmp_path, task, 1)
    run = tmp_path / "run"
    proc = trainkit_run(
        example, "--runtime", "platform", "--minio", minio, "--dataset-id", 1, "--output", run
    )
    assert proc.returncode == 0
    log = (run / "container.log").read_text()
    steps = [
        "Sourced additional environment from .env.",
        "/minio/datasets/1\n",
        "ONNX model export will be attemped using the following configuration:",
        "/workspace\n.\n",
        "Setup started: ",
        "Setup ended: ",
        "Training started: ",
        f"{json.loads((example / 'config' / 'custom.json').read_text())['score_name']}: ",
        "\nreal\t",  # `time python train.py`
        "Training ended: ",
    ]
    at = 0
    for step in steps:  # in this order
        at = log.find(step, at)
        assert at >= 0, f"{step!r} missing or out of order"
    workdir = run / "image" / "workspace"
    # the image holds what the Dockerfile COPYs: the stock config_to_args.py, not config.py
    stock = MODEL_TRAINING_DIR / "common"
    assert (workdir / "config_to_args.py").read_bytes() == (
        stock / "config_to_args.py"
    ).read_bytes()
    assert not (workdir / "config.py").exists() and (run / "context" / "config.py").is_file()
    # both forms' initial values, presets merged by setup.py
    schema = json.loads((example / "config" / "config.jsonschema").read_text())
    config = json.loads((workdir / "train_config.json").read_text())
    assert config == {
        **platform.form_values(schema),
        **json.loads((example / "config" / "presets.json").read_text()),
        "num-classes": 2,
    }
    assert json.loads((workdir / "export_config.json").read_text()) == platform.export_form_values()
    # the score the platform stores, from the last 50 lines of the container's log
    custom = json.loads((example / "config" / "custom.json").read_text())
    value = platform_score.platform_score(log, custom["score_regexp"])
    assert value is not None and 0.0 <= value <= 1.0
    assert summary_value(proc.stdout, "score").startswith(f"{custom['score_name']} = {value} ")
    assert (run / "output" / "score.txt").read_text().strip() == str(value)
    # the model the platform serves: <stem>.onnx beside model_filepath, loadable
    model = run / "output" / "model.onnx"
    assert summary_value(proc.stdout, "model") == f"/workspace/output/model.onnx (onnx) = {model}"
    import onnxruntime

    session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    (shape,) = platform.export_form_values()["input_shapes"]
    (input_,) = session.get_inputs()
    assert input_.shape == shape and input_.name == "Input 1"  # the platform's naming
    (out, *_) = session.run(None, {input_.name: np.random.rand(*shape).astype(np.float32)})
    assert out.shape[0] == 1 and np.isfinite(out).all()


@pytest.mark.slow
def test_export_form_switched_off_serves_the_fallback_model(tmp_path):
    example = EXAMPLES_DIR / EXAMPLES["classification"][0]
    off = tmp_path / "export_off.json"
    off.write_text("{}")
    run = tmp_path / "run"
    proc = trainkit_run(
        example,
        "--runtime",
        "platform",
        "--minio",
        minio_with(tmp_path, "classification", 1),
        "--dataset-id",
        1,
        "--output",
        run,
        "--export-config",
        off,
        *QUICK,
    )
    assert proc.returncode == 0
    log = (run / "container.log").read_text()
    assert (
        "ONNX export failed: ExportError: export_config.json: expected a non-empty JSON object"
        in log
    )
    assert ". Falling back to " in log  # the template's save function, with the reason before
    assert "ONNX model export will be attemped" not in log  # the stock notice skips {}
    model = run / "output" / "model.pt"
    assert summary_value(proc.stdout, "model") == f"/workspace/output/model.pt (pytorch) = {model}"
    assert not (run / "output" / "model.onnx").exists()
    import torch

    assert torch.load(model, map_location="cpu")  # the state dict the fallback wrote


@pytest.mark.slow
@pytest.mark.parametrize("runtime", ["trainkit", "platform"])
def test_restart_applies_the_platforms_config_edit(runtime, tmp_path):
    """--restart with an edited form and another dataset: copied into the same container like
    the platform's PUT /train/config, then started again; the run uses the new values (presets
    still merged), starts fresh because the config hash changed, then a plain restart does
    not train again."""
    example = EXAMPLES_DIR / EXAMPLES["classification"][0]
    minio = minio_with(tmp_path, "classification", 1, 2)
    run = tmp_path / "run"
    common = [example, "--runtime", runtime, "--minio", minio, "--output", run]
    first = trainkit_run(*common, "--dataset-id", 1, *QUICK)
    assert first.returncode == 0
    second = trainkit_run(*common, "--dataset-id", 2, "--restart", "--set", "max-steps=3")
    assert second.returncode == 0
    assert "edited the container like the platform's config dialog" in second.stdout
    workdir = run / ("image/workspace" if runtime == "platform" else "workspace")
    config = json.loads((workdir / "train_config.json").read_text())
    assert config["max-steps"] == 3 and config["epochs"] == 1  # edited; the rest kept
    assert config["augment"] is True and config["num-classes"] == 2  # presets + setup again
    assert "DATASET_ID='2'" in (workdir / ".env").read_text().splitlines()
    log = (run / "container.log").read_text()
    seen = "/minio/datasets/2" if runtime == "platform" else f"{minio}/datasets/2"
    assert seen in log
    assert re.search(r"config changed \([^)]*DATASET_ID[^)]*max_steps", log), log[-3000:]
    assert log.count("Accuracy: ") == 2  # one container, both starts in its log
    state = json.loads((run / "container.json").read_text())
    assert state["dataset_id"] == 2 and state["extra"]["env"] == {"DATASET_ID": "1"}
    third = trainkit_run(*common, "--dataset-id", 2, "--restart")
    assert third.returncode == 0
    assert "edited the container" not in third.stdout
    assert "Epoch 0" not in third.stdout  # finished: the score is reported, nothing retrained
    assert summary_value(third.stdout, "score").startswith("Accuracy = ")


def test_restart_needs_the_earlier_container(tmp_path):
    minio = minio_with(tmp_path, "classification", 1)
    proc = trainkit_run(
        EXAMPLES_DIR / EXAMPLES["classification"][0],
        "--minio",
        minio,
        "--dataset-id",
        1,
        "--output",
        tmp_path / "run",
        "--restart",
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().endswith("(run without --restart first)")
    assert proc.stderr.count("\n") == 1


def test_env_the_platform_would_expand_is_refused_before_anything_runs(tmp_path):
    arch = tmp_path / "templates" / "Acme" / "Classification" / "TinyNet"
    shutil.copytree(EXAMPLES_DIR / EXAMPLES["classification"][0], arch)
    env_file = arch / "docker" / ".env"
    with env_file.open("a") as env:
        env.write("APP_EXTRA=$(id)\n")  # a key trainkit's .env allowlist takes
    line = len(env_file.read_text().splitlines())
    run = tmp_path / "run"
    proc = trainkit_run(
        arch,
        "--runtime",
        "platform",
        "--minio",
        minio_with(tmp_path, "classification", 1),
        "--dataset-id",
        1,
        "--output",
        run,
    )
    assert proc.returncode == stock_entrypoint.REFUSED
    assert proc.stderr.strip().splitlines()[-1] == (
        f"trainkit run: error: .env line {line} (APP_EXTRA): the platform's `source .env` would "
        "expand `$(id)`"
    )
    assert not any((run / "datasets").iterdir())  # setup.py never ran


def test_a_form_value_the_platforms_eval_would_expand_is_refused(tmp_path):
    arch = tmp_path / "templates" / "Acme" / "Classification" / "TinyNet"
    shutil.copytree(EXAMPLES_DIR / EXAMPLES["classification"][0], arch)
    schema_file = arch / "config" / "config.jsonschema"
    schema = json.loads(schema_file.read_text())
    schema["properties"]["note"] = {"type": "string", "default": "plain"}
    schema_file.write_text(json.dumps(schema))
    proc = trainkit_run(
        arch,
        "--runtime",
        "platform",
        "--minio",
        minio_with(tmp_path, "classification", 1),
        "--dataset-id",
        1,
        "--output",
        tmp_path / "run",
        "--set",
        "note=$(reboot)",
    )
    assert proc.returncode == stock_entrypoint.REFUSED
    assert proc.stderr.strip().splitlines()[-1] == (
        "trainkit run: error: train_config.json key 'note': the platform's eval would expand "
        "`$(reboot)`"
    )
    assert "Training started" in proc.stdout and "Accuracy:" not in proc.stdout


@pytest.mark.slow
def test_the_stock_export_py_exports_the_example_networks(tmp_path):
    """The platform's own export.py (which a train.py importing `export` would get there),
    with the export form's initial values: a loadable ONNX file for each example network."""
    (tmp_path / "export_config.json").write_text(json.dumps(platform.export_form_values()))
    code = """
import importlib.util, sys, numpy as np, onnxruntime, torch
spec = importlib.util.spec_from_file_location("stock_export", sys.argv[1])
stock = importlib.util.module_from_spec(spec); spec.loader.exec_module(stock)
sys.path.insert(0, sys.argv[2])
from model import Net
stock.export_model(Net(2), "m.pt", "pytorch", lambda m, p: torch.save(m.state_dict(), p))
session = onnxruntime.InferenceSession("m.onnx", providers=["CPUExecutionProvider"])
feed = {session.get_inputs()[0].name: np.ones((1, 3, 224, 224), np.float32)}
print(session.run(None, feed)[0].shape)
"""
    for example, _ in EXAMPLES.values():
        docker = EXAMPLES_DIR / example / "docker"
        proc = subprocess.run(
            [sys.executable, "-c", code, str(MODEL_TRAINING_DIR / "export/export.py"), str(docker)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "ONNX model export failed" not in proc.stdout, proc.stdout[-3000:]
        assert (tmp_path / "m.onnx").is_file()
        (tmp_path / "m.onnx").unlink()
