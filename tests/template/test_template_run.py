"""`trainkit run` on each committed example with a small synthetic dataset, on CPU:
the score line the platform would read, the ONNX file against PyTorch, and train.py fed the
platform's stock config_to_args.py line. One run per task, shared by its assertions."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.platform_stock import stock_config_to_args_line
from tests.support.repo import EXAMPLES_DIR
from trainkit.platform import score
from trainkit.synthetic import write_cvat_dataset

pytestmark = pytest.mark.slow

# task -> (example, images, classes, form values for a quick CPU run)
RUNS = {
    "classification": (
        "Acme/Classification/TinyNet",
        96,
        2,
        {"epochs": 4, "workers": 0, "batch-size": 16},
    ),
    "detection": ("Acme/Detection/TinyDet", 40, 2, {"epochs": 1, "max-steps": 3, "workers": 0}),
    "segmentation": (
        "Acme/Segmentation/TinySeg",
        32,
        2,
        {"epochs": 1, "max-steps": 3, "workers": 0},
    ),
}

# Runs in the workspace: the exported ONNX model against the PyTorch network it came from
# (model.pt: --export-set save_native=true writes the state dict next to the ONNX file). The
# platform's export form's initial values export one fixed input shape, 1x3x224x224.
COMPARE_ONNX = """
import json, sys
import numpy as np, onnxruntime, torch
from model import Net
config = json.load(open("train_config.json"))
net = Net(config["num-classes"])
net.load_state_dict(torch.load(sys.argv[1], map_location="cpu"))
net.eval()
session = onnxruntime.InferenceSession(sys.argv[2], providers=["CPUExecutionProvider"])
name = session.get_inputs()[0].name
worst = 0.0
for shape in ((1, 3, 224, 224),):
    image = torch.rand(*shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = net(image).numpy()
    (got,) = session.run(None, {name: image.numpy()})
    assert got.shape == expected.shape, (got.shape, expected.shape)
    worst = max(worst, float(np.abs(got - expected).max()))
print(json.dumps({"max_abs_diff": worst}))
"""


def trainkit_run(arch: Path, minio: Path, run_dir: Path, values: dict):
    command = [sys.executable, "-m", "trainkit", "run", str(arch), "--minio", str(minio)]
    command += ["--dataset-id", "1", "--output", str(run_dir)]
    command += [arg for key, value in values.items() for arg in ("--set", f"{key}={value}")]
    command += ["--export-set", "save_native=true"]
    return subprocess.run(command, capture_output=True, text=True, timeout=600)


class Run:
    def __init__(self, task: str, root: Path):
        example, images, classes, config = RUNS[task]
        self.task = task
        self.arch = root / "templates" / example
        shutil.copytree(EXAMPLES_DIR / example, self.arch)
        self.minio = root / "minio"
        self.run_dir = root / "run"
        write_cvat_dataset(self.minio, 1, images, task, seed=0, n_classes=classes)
        self.proc = trainkit_run(self.arch, self.minio, self.run_dir, config)
        self.custom = json.loads((self.arch / "config" / "custom.json").read_text())

    @property
    def output(self) -> Path:
        return self.run_dir / "output"

    @property
    def workspace(self) -> Path:
        return self.run_dir / "workspace"

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "MINIO_ROOT": str(self.minio),
            "DATASETS_ROOT": str(self.run_dir / "datasets"),
            "OUTPUT_DIR": str(self.output),
            "DATASET_ID": "1",
            **extra,
        }


_RUNS: dict[str, Run] = {}


def get_run(task: str, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """One training per task for the whole module."""
    if task not in _RUNS:
        _RUNS[task] = Run(task, tmp_path_factory.mktemp(task))
    run = _RUNS[task]
    assert run.proc.returncode == 0, run.proc.stdout[-3000:] + run.proc.stderr[-3000:]
    return run


@pytest.fixture(scope="module", params=sorted(RUNS))
def trained(request, tmp_path_factory) -> Run:
    return get_run(request.param, tmp_path_factory)


@pytest.fixture(scope="module")
def classification(tmp_path_factory) -> Run:
    return get_run("classification", tmp_path_factory)


def test_score_line_is_what_the_platform_reads(trained):
    value = score.platform_score(trained.proc.stdout, trained.custom["score_regexp"])
    assert value is not None, trained.proc.stdout[-2000:]
    assert 0.0 <= value <= 1.0
    assert (trained.output / "score.txt").read_text().strip() == str(value)
    last = trained.proc.stdout.split("trainkit run: exit 0")[0].rstrip().splitlines()[-1]
    assert last.startswith(f"{trained.custom['score_name']}: ")


def test_summary_says_where_model_logs_and_score_are(trained):
    summary = trained.proc.stdout.split("trainkit run: exit 0", 1)[1]
    assert str(trained.output / "model.onnx") in summary
    assert str(trained.run_dir / "run.log") in summary
    assert str(trained.output / "score.txt") in summary
    assert (trained.run_dir / "run.log").read_text().count(trained.custom["score_name"] + ":")


def test_outputs_land_in_the_output_dir(trained):
    assert (trained.output / "model.onnx").is_file()
    assert (trained.output / "checkpoints" / "last.ckpt").is_file()
    assert list((trained.output / "logs").rglob("metrics.csv"))
    assert not (trained.output / "failure").exists()
    for split in ("train", "val"):
        assert any((trained.run_dir / "datasets" / "images" / split).iterdir())
        assert any((trained.run_dir / "datasets" / "labels" / split).iterdir())


def test_onnx_matches_pytorch(trained):
    weights, onnx_file = trained.output / "model.pt", trained.output / "model.onnx"
    proc = subprocess.run(
        [sys.executable, "-c", COMPARE_ONNX, str(weights), str(onnx_file)],
        cwd=trained.workspace,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1])["max_abs_diff"] < 1e-4


def test_classification_beats_chance_clearly(classification):
    value = score.platform_score(classification.proc.stdout, classification.custom["score_regexp"])
    assert value > 0.8  # 2 classes: chance is 0.5


def test_train_py_takes_the_platform_stock_argv_line(classification, tmp_path):
    """The platform's entrypoint evals `python train.py $(python config_to_args.py)` with its
    own config_to_args.py: unquoted `--key value`, bare `--flag` for true."""
    trained = classification
    workspace = shutil.copytree(trained.workspace, tmp_path / "workspace")
    config = json.loads((workspace / "train_config.json").read_text())
    assert config["augment"] is True and "num-classes" in config  # presets + setup's custom
    config.update({"epochs": 1, "max-steps": 2})
    (workspace / "train_config.json").write_text(json.dumps(config))
    line = stock_config_to_args_line(config)  # the platform's shipped file, run as it is
    assert "--augment" in line.split() and "--num-classes 2" in line
    output = tmp_path / "output"
    proc = subprocess.run(
        ["bash", "-c", 'eval "exec \\"$PY\\" train.py $LINE"'],
        cwd=workspace,
        env=trained.env(PY=sys.executable, LINE=line, OUTPUT_DIR=str(output)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert score.platform_score(proc.stdout, trained.custom["score_regexp"]) is not None
    assert (output / "model.onnx").is_file()


def _saved_step(ckpt: Path) -> int:
    import torch

    return int(torch.load(ckpt, map_location="cpu", weights_only=False)["global_step"])


def _train_rows(output: Path) -> list[str]:
    with (output / "logs" / "metrics.csv").open() as fh:
        return [line for line in fh if line.strip()]


def test_a_second_run_reuses_the_run_directory(tmp_path):
    """Re-running with the same --output re-uses the dataset set-up and the checkpoints: the
    finished run is not trained again. Its own training (no cache shared with other tests)."""
    first = Run("segmentation", tmp_path)
    assert first.proc.returncode == 0, first.proc.stdout[-3000:]
    ckpt = first.output / "checkpoints" / "last.ckpt"
    step, mtime = _saved_step(ckpt), ckpt.stat().st_mtime_ns
    rows = _train_rows(first.output)
    links = {p: p.lstat().st_ino for p in (first.run_dir / "datasets" / "images").rglob("*")}
    assert step > 0 and links

    # the same form values
    proc = trainkit_run(first.arch, first.minio, first.run_dir, RUNS["segmentation"][3])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    regexp = first.custom["score_regexp"]
    assert score.platform_score(proc.stdout, regexp) == score.platform_score(
        first.proc.stdout, regexp
    )
    # the model was not retrained: no Trainer ran, the checkpoints and the log are untouched
    assert "run already finished" in proc.stdout
    assert "trainkit: world size" not in proc.stdout and "Restoring states" not in proc.stdout
    assert _saved_step(ckpt) == step and ckpt.stat().st_mtime_ns == mtime  # step kept
    assert _train_rows(first.output) == rows
    # the dataset set-up was re-used: setup.py ran again (a new workspace = a new image) and
    # kept every link as it was (not deleted and re-created)
    assert {p: p.lstat().st_ino for p in links} == links
    assert (first.output / "model.onnx").is_file()
    log = (first.run_dir / "run.log").read_text()
    assert log.count(f"{first.custom['score_name']}: ") == 2  # run.log accumulates runs
