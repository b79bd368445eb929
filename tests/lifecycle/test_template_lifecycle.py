"""The lifecycle on the committed, baked classification example (templates/Acme/Classification/
TinyNet) on a synthetic CVAT dataset, CPU only: torchrun with 2 processes (gloo), SIGTERM and
resume through the real entrypoint, and failure files for a corrupt image / missing label dir."""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.lifecycle.conftest import LAUNCHER_ENV, REPO

ARCH = REPO / "templates" / "Acme" / "Classification" / "TinyNet"
TIMEOUT = 600

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (ARCH / "docker" / "train.py").is_file(), reason=f"{ARCH}: example not committed"
    ),
]


def make_run(tmp_path: Path, *settings: str, images: int = 24):
    """A trainkit-run workspace (= the image's WORKDIR) and its environment."""
    from trainkit import run as trainkit_run
    from trainkit.synthetic import write_cvat_dataset

    minio = tmp_path / "minio"
    write_cvat_dataset(minio, "1", images, "classification", seed=3, size=32)
    args = argparse.Namespace(
        arch_dir=ARCH,
        minio=minio,
        dataset_id="1",
        output=tmp_path / "run",
        config=None,
        set=[
            "image-size=32",
            "batch-size=4",
            "workers=0",
            "log-every-n-steps=1",
            "accelerator=cpu",
            *settings,
        ],
    )
    plan = trainkit_run.plan_run(args)
    trainkit_run.prepare(plan)
    env = {k: v for k, v in plan.env.items() if k not in LAUNCHER_ENV or k == "DATASET_ID"}
    return plan, env


def entrypoint(plan, env, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "docker-entrypoint.sh"],
        cwd=plan.workspace,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        **kwargs,
    )


def score_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("Accuracy: ")]


def saved_step(ckpt: Path) -> int:
    import torch

    return int(torch.load(ckpt, map_location="cpu", weights_only=False)["global_step"])


def train_steps(out: Path) -> list[int]:
    with (out / "logs" / "metrics.csv").open(newline="") as fh:
        return [int(row["step"]) for row in csv.DictReader(fh) if row.get("train_loss")]


def test_torchrun_two_processes_on_the_example(tmp_path):
    plan, env = make_run(tmp_path, "epochs=2")
    # setup.py once (like the entrypoint) so train_config.json holds num-classes for the argv;
    # then a fresh DATASETS_ROOT: train.py's setup_once must set it up once for both ranks.
    first = subprocess.run(
        [sys.executable, "setup.py"], cwd=plan.workspace, env=env, capture_output=True, text=True
    )
    assert first.returncode == 0, first.stderr
    env = {**env, "DATASETS_ROOT": str(tmp_path / "node-datasets")}
    argv = subprocess.run(
        [sys.executable, "config_to_args.py", "--null"],
        cwd=plan.workspace,
        env=env,
        capture_output=True,
        check=True,
    ).stdout.decode()
    args = [a for a in argv.split("\0") if a]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    proc = subprocess.run(
        [*launcher, "train.py", *args],
        cwd=plan.workspace,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "GLOBAL_RANK: 0, MEMBER: 1/2" in proc.stderr
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in proc.stderr  # both ranks ran
    assert "distributed_backend=gloo" in proc.stderr
    assert len(score_lines(proc.stdout)) == 1  # only rank 0 prints the score
    out = plan.output_dir
    assert sorted(p.name for p in out.glob("*.onnx")) == ["model.onnx"]
    # one rank set the dataset up, the other waited for it and skipped
    assert proc.stderr.count("dataset setup already done") == 1
    assert (tmp_path / "node-datasets" / "labels" / "train").is_dir()
    assert not (out / "failure").exists()


def test_entrypoint_starts_torchrun_with_nproc_per_node(tmp_path):
    plan, env = make_run(tmp_path, "epochs=1")
    proc = entrypoint(plan, {**env, "NPROC_PER_NODE": "2"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "torch.distributed.run --nproc_per_node 2 --standalone train.py" in proc.stdout
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in proc.stderr
    assert len(score_lines(proc.stdout)) == 1
    assert sorted(p.name for p in plan.output_dir.glob("*.onnx")) == ["model.onnx"]
    # setup.py ran before torchrun; both ranks found the dataset set up
    assert proc.stderr.count("dataset setup already done") == 2


@pytest.mark.parametrize("value", ["0", "two", "2; rm -rf /"])
def test_entrypoint_refuses_a_bad_nproc_per_node(tmp_path, value):
    plan, env = make_run(tmp_path, "epochs=1")
    proc = entrypoint(plan, {**env, "NPROC_PER_NODE": value})
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr
    assert "NPROC_PER_NODE must be a positive integer" in output
    if len(value) > 1:
        assert value not in output  # values are never echoed
    assert "NPROC_PER_NODE" in _failure(plan)["message"]
    assert "Setup started" not in output  # refused before mounting or setting anything up


# Imported by every Python process of the first run (via PYTHONPATH): adds a callback that sends
# SIGTERM to its own process at an exact global step, so the stop point does not depend on how
# fast this machine trains (polling for a checkpoint and then signalling raced under load).
SIGTERM_AT_STEP_SITECUSTOMIZE = """
import os
import signal

_STEP = int(os.environ["TEST_SIGTERM_AT_STEP"])
try:
    import lightning.pytorch as _pl
except ImportError:  # not a training process
    _pl = None

if _pl is not None:

    class _SigtermAtStep(_pl.Callback):
        def on_train_batch_end(self, trainer, *args):
            if trainer.global_step == _STEP and trainer.is_global_zero:
                os.kill(os.getpid(), signal.SIGTERM)

    _init = _pl.Trainer.__init__

    def _patched_init(self, *args, callbacks=None, **kwargs):
        _init(self, *args, callbacks=[*(callbacks or []), _SigtermAtStep()], **kwargs)

    _pl.Trainer.__init__ = _patched_init
"""


def test_sigterm_then_resume_through_the_entrypoint(tmp_path):
    plan, env = make_run(tmp_path, "epochs=12")
    out = plan.output_dir
    last = out / "checkpoints" / "last.ckpt"
    hook_dir = tmp_path / "sigterm-hook"
    hook_dir.mkdir()
    (hook_dir / "sitecustomize.py").write_text(SIGTERM_AT_STEP_SITECUSTOMIZE)
    python_path = os.pathsep.join(p for p in (str(hook_dir), env.get("PYTHONPATH")) if p)
    first = entrypoint(
        plan, {**env, "PYTHONPATH": python_path, "TEST_SIGTERM_AT_STEP": "15"}
    )  # 3 epochs of 5 steps, then SIGTERM arrives inside training
    first_log = first.stdout + first.stderr
    assert first.returncode == 143, first_log[-3000:]
    assert "stopped: train: SIGTERM received; checkpoint saved at step" in first_log
    assert not score_lines(first_log)
    assert not (out / "failure").exists()
    stopped_at = saved_step(last)
    assert 15 <= stopped_at < 12 * 5  # stopped where the signal arrived, not at the end

    again = entrypoint(plan, env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"Restoring states from the checkpoint path at {last}" in again.stderr
    steps = train_steps(out)  # logged every 10 steps (presets.json pins log-every-n-steps)
    assert min(steps) < stopped_at <= max(steps)
    duplicated = [step for step, n in Counter(steps).items() if n > 1]
    assert not duplicated  # continued from the saved step, nothing trained twice
    assert saved_step(last) == 12 * 5  # 19 train images, batch 4: 5 steps per epoch
    assert len(score_lines(again.stdout)) == 1
    assert (out / "model.onnx").is_file()

    # started once more: finished, no training, same score line for the platform
    third = entrypoint(plan, env)
    assert third.returncode == 0, third.stderr[-3000:]
    assert score_lines(third.stdout) == score_lines(again.stdout)
    assert train_steps(out) == steps

    # `trainkit export RUN/output` re-exports from best.ckpt with the run's workspace code
    from trainkit.export import export_checkpoint

    (out / "model.onnx").unlink()
    assert export_checkpoint(out) == out / "model.onnx"
    assert (out / "model.onnx").stat().st_size > 1000


def _failure(plan) -> dict:
    return json.loads((plan.output_dir / "failure").read_text())


def test_corrupt_image_writes_failure_file(tmp_path):
    plan, env = make_run(tmp_path, "epochs=1")
    images = [p for p in (plan.minio_root / "datasets" / "1").iterdir() if p.is_file()]
    assert images
    for image in images:
        image.write_bytes(b"not an image at all")
    proc = entrypoint(plan, env)
    assert proc.returncode == 1
    record = _failure(plan)
    assert (record["stage"], record["type"]) == ("train", "UnidentifiedImageError")
    assert "cannot identify image file" in record["message"]
    assert any(image.name in record["message"] for image in images)  # names the file
    last_line = proc.stderr.strip().splitlines()[-1]
    assert last_line == f"error: train: UnidentifiedImageError: {record['message']}"
    assert not (plan.output_dir / "model.onnx").exists()


def test_missing_label_dir_writes_failure_file(tmp_path):
    plan, env = make_run(tmp_path, "epochs=1")
    setup = subprocess.run(
        [sys.executable, "setup.py"], cwd=plan.workspace, env=env, capture_output=True, text=True
    )
    assert setup.returncode == 0, setup.stderr
    labels = plan.datasets_root / "labels" / "train"
    for path in sorted(labels.iterdir(), reverse=True):
        path.unlink()
    labels.rmdir()
    proc = entrypoint(plan, env)  # setup is marked done: train.py finds the labels missing
    assert proc.returncode == 1
    record = _failure(plan)
    assert record["stage"] == "train"
    assert "labels" in record["message"]
    assert proc.stderr.strip().splitlines()[-1].startswith("error: train: ")
    assert os.environ.get("OUTPUT_DIR") != str(plan.output_dir)  # the test's env stays clean
