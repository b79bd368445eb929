"""The lifecycle on the committed, baked classification example (templates/Acme/Classification/
TinyNet) on a synthetic CVAT dataset, CPU only, through the real entrypoint: SIGTERM at an exact
step and resume, SIGKILL mid-run and resume from the time-based checkpoint, a finished run not
retrained and re-exporting a missing model (the template's own branch), failure files for a
corrupt image / missing label dir. Signals come from a test-only sitecustomize callback inside
the training process (no polling, no sleeps before a signal). Scale-out: test_scale_out.py."""

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
from tests.support.services import IN_CI

ARCH = REPO / "templates" / "Acme" / "Classification" / "TinyNet"
TIMEOUT = 600

pytestmark = [
    pytest.mark.slow,
    # under CI=true a missing example is a failure, not a skip
    pytest.mark.skipif(
        not IN_CI and not (ARCH / "docker" / "train.py").is_file(),
        reason=f"{ARCH}: example not committed",
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


# Imported by every Python process of a run (via PYTHONPATH): adds a callback that sends a signal
# to its own process at an exact global step (TEST_SIGNAL_AT_STEP, TEST_SIGNAL=TERM|KILL), so
# where the run stops does not depend on how fast this machine trains. TEST_SLOW_STEP_SECONDS
# makes each step take at least that long (before the checkpoint callbacks run: Lightning orders
# them last), so a time-based checkpoint interval shorter than it elapses at every step.
SIGNAL_AT_STEP_SITECUSTOMIZE = """
import os
import signal
import time

_STEP = int(os.environ["TEST_SIGNAL_AT_STEP"])
_SIGNAL = getattr(signal, "SIG" + os.environ.get("TEST_SIGNAL", "TERM"))
_SLOW = float(os.environ.get("TEST_SLOW_STEP_SECONDS", "0"))
try:
    import lightning.pytorch as _pl
except ImportError:  # not a training process
    _pl = None

if _pl is not None:

    class _SignalAtStep(_pl.Callback):
        def on_train_batch_end(self, trainer, *args):
            if trainer.global_step == _STEP and trainer.is_global_zero:
                os.kill(os.getpid(), _SIGNAL)
            time.sleep(_SLOW)

    _init = _pl.Trainer.__init__

    def _patched_init(self, *args, callbacks=None, **kwargs):
        _init(self, *args, callbacks=[*(callbacks or []), _SignalAtStep()], **kwargs)

    _pl.Trainer.__init__ = _patched_init
"""


def with_signal_hook(tmp_path: Path, env: dict, step: int, signal_name: str, **extra: str) -> dict:
    hook_dir = tmp_path / "signal-hook"
    hook_dir.mkdir(exist_ok=True)
    (hook_dir / "sitecustomize.py").write_text(SIGNAL_AT_STEP_SITECUSTOMIZE)
    python_path = os.pathsep.join(p for p in (str(hook_dir), env.get("PYTHONPATH")) if p)
    return {
        **env,
        "PYTHONPATH": python_path,
        "TEST_SIGNAL_AT_STEP": str(step),
        "TEST_SIGNAL": signal_name,
        **extra,
    }


def onnx_output(model: Path) -> object:
    import numpy as np
    import onnxruntime

    session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    # the shape of the platform's export form's initial values (one fixed input, 1x3x224x224)
    shape = session.get_inputs()[0].shape
    image = np.random.default_rng(0).random(shape, dtype=np.float32)
    return session.run(None, {session.get_inputs()[0].name: image})[0]


def test_sigterm_then_resume_through_the_entrypoint(tmp_path):
    plan, env = make_run(tmp_path, "epochs=12")
    out = plan.output_dir
    last = out / "checkpoints" / "last.ckpt"
    # 3 epochs of 5 steps, then SIGTERM arrives inside training
    first = entrypoint(plan, with_signal_hook(tmp_path, env, 15, "TERM"))
    first_log = first.stdout + first.stderr
    assert first.returncode == 143, first_log[-3000:]
    assert "stopped: train: SIGTERM received; checkpoint saved at step" in first_log
    assert not score_lines(first_log)
    assert not (out / "failure").exists()
    stopped_at = saved_step(last)
    # signalled at the end of step 15: the ranks agree on it when the next batch starts and
    # Lightning stops after that batch
    assert stopped_at == 16

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
    last_mtime = last.stat().st_mtime_ns
    third = entrypoint(plan, env)
    assert third.returncode == 0, third.stderr[-3000:]
    assert score_lines(third.stdout) == score_lines(again.stdout)
    assert "run already finished" in third.stderr
    assert train_steps(out) == steps
    assert "re-exported" not in third.stderr  # the model is there

    # the template's finished-run branch re-exports a missing model from best.ckpt
    exported = onnx_output(out / "model.onnx")
    (out / "model.onnx").unlink()
    fourth = entrypoint(plan, env)
    assert fourth.returncode == 0, fourth.stderr[-3000:]
    assert f"re-exported {out / 'model.onnx'} from {out / 'checkpoints' / 'best.ckpt'}" in (
        fourth.stderr
    )
    assert score_lines(fourth.stdout) == score_lines(again.stdout)
    assert "Restoring states" not in fourth.stderr and train_steps(out) == steps  # not trained
    assert last.stat().st_mtime_ns == last_mtime
    import numpy as np

    np.testing.assert_allclose(onnx_output(out / "model.onnx"), exported, atol=1e-5)

    # `trainkit export RUN/output` re-exports from best.ckpt with the run's workspace code
    from trainkit.export import export_checkpoint

    (out / "model.onnx").unlink()
    assert export_checkpoint(out) == out / "model.onnx"
    assert (out / "model.onnx").stat().st_size > 1000


def test_sigkill_mid_run_resumes_from_the_time_based_checkpoint(tmp_path):
    """`docker stop` under the platform's stock entrypoint (bash as PID 1, no exec) ends in
    SIGKILL: Python sees nothing. last.ckpt every checkpoint-minutes keeps what was trained."""
    plan, env = make_run(tmp_path, "epochs=2", "checkpoint-minutes=0.004")  # 0.24 s
    out = plan.output_dir
    last = out / "checkpoints" / "last.ckpt"
    # steps take >= 0.3 s, so the 0.24 s interval elapses at every step; SIGKILL after step 3,
    # before that step's checkpoint, in the first epoch (5 steps: no epoch-end checkpoint yet)
    first = entrypoint(
        plan, with_signal_hook(tmp_path, env, 3, "KILL", TEST_SLOW_STEP_SECONDS="0.3")
    )
    assert first.returncode == -9 or first.returncode == 128 + 9, first.stderr[-3000:]
    assert not score_lines(first.stdout)
    assert saved_step(last) == 2  # the time-based checkpoint of the step before the kill

    again = entrypoint(plan, env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"Restoring states from the checkpoint path at {last}" in again.stderr
    assert saved_step(last) == 2 * 5
    assert len(score_lines(again.stdout)) == 1
    assert (out / "model.onnx").is_file()


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
