"""Real training runs (CPU, tiny model on random tensors) of tests/lifecycle/tiny_train.py, a
train.py built with lifecycle.train_task like the templates: failure file, SIGTERM at an exact
step (sent from inside the training step: no polling, no sleeps) + resume, changed config,
finished run restarted, torchrun DDP with 2 processes (gloo). The same behaviours on the real
template: test_template_lifecycle.py."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.lifecycle.conftest import TINY_TRAIN, subprocess_env

TIMEOUT = 300


EXPORT_CONFIG = {
    "model_type": "pytorch",
    "input_names": ["input"],
    "input_shapes": [[1, 4]],
    "input_types": ["float32"],
    "output_names": ["output"],
    "dynamic_axes": {"input": {"0": "batch"}, "output": {"0": "batch"}},
}


def run_tiny(run_env, *args: str, torchrun: int = 0, **env: str) -> subprocess.CompletedProcess:
    """tiny_train.py in the run's working directory (= the image's WORKDIR)."""
    workdir = run_env["OUTPUT_DIR"].parent
    (workdir / "export_config.json").write_text(json.dumps(EXPORT_CONFIG))
    cmd = [sys.executable, str(TINY_TRAIN), *args]
    if torchrun:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        cmd = [*launcher, f"--nproc_per_node={torchrun}", str(TINY_TRAIN), *args]
    return subprocess.run(
        cmd,
        env=subprocess_env(run_env, **env),
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def saved_step(ckpt: Path) -> int:
    import torch

    return int(torch.load(ckpt, map_location="cpu", weights_only=False)["global_step"])


def start_step(stdout: str) -> int | None:
    lines = [ln for ln in stdout.splitlines() if ln.startswith("start global_step=")]
    assert len(lines) <= 1, stdout
    return int(lines[0].split("=")[1]) if lines else None


def score_lines(stdout: str) -> list[str]:
    return [ln for ln in stdout.splitlines() if ln.startswith("Accuracy: ")]


def metric_rows(out: Path, column: str) -> list[dict[str, str]]:
    with (out / "logs" / "metrics.csv").open(newline="") as fh:
        return [row for row in csv.DictReader(fh) if row.get(column)]


@pytest.mark.slow
def test_failure_in_training_step_writes_failure_file(run_env):
    proc = run_tiny(run_env, "--fail_at_step", "3")
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: train: RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB"
    )
    record = json.loads((run_env["OUTPUT_DIR"] / "failure").read_text())
    assert (record["stage"], record["type"]) == ("train", "RuntimeError")
    assert record["message"].startswith("CUDA out of memory")
    assert "batch_size" in record["hint"]
    assert not (run_env["OUTPUT_DIR"] / "model.onnx").exists()
    assert not score_lines(proc.stdout)


def test_failure_in_setup_stage(run_env):
    proc = run_tiny(run_env, "--fail_stage", "setup")
    assert proc.returncode == 1
    record = json.loads((run_env["OUTPUT_DIR"] / "failure").read_text())
    assert record["stage"] == "setup"
    assert record["type"] == "FileNotFoundError"
    assert "missing label dir" in record["message"]


@pytest.mark.slow
def test_sigterm_saves_checkpoint_and_restart_resumes(run_env):
    out = run_env["OUTPUT_DIR"]
    ckpt = out / "checkpoints" / "last.ckpt"
    first = run_tiny(run_env, "--max_epochs", "4", TINY_SIGTERM_AT_STEP="11")
    assert first.returncode == 143, first.stderr
    assert "stopped: train: SIGTERM received; checkpoint saved at step 13" in first.stderr
    assert not (out / "failure").exists()
    assert not score_lines(first.stdout)
    # signalled in step 11; the ranks agree on it when the next batch starts, and Lightning
    # stops after that batch: step 13, past the epoch-end checkpoint at step 8
    assert saved_step(ckpt) == 13

    again = run_tiny(run_env, "--max_epochs", "4")
    assert again.returncode == 0, again.stderr
    assert start_step(again.stdout) == 13
    assert len(score_lines(again.stdout)) == 1
    train_steps = [int(r["step"]) for r in metric_rows(out, "train_loss")]
    assert min(train_steps) < 13 < max(train_steps)  # first attempt's rows kept, appended to
    assert len(train_steps) == len(set(train_steps)) == 4 * 8  # nothing trained twice
    assert (out / "model.onnx").is_file()


@pytest.mark.slow
def test_finished_run_is_not_retrained_and_reexports(run_env):
    out = run_env["OUTPUT_DIR"]
    first = run_tiny(run_env, "--max_epochs", "3", "--constant_val")
    assert first.returncode == 0, first.stderr
    (score,) = score_lines(first.stdout)
    # last.ckpt is the end of training even though the score stopped improving after epoch 0
    assert saved_step(out / "checkpoints" / "last.ckpt") == 3 * 8
    assert saved_step(out / "checkpoints" / "best.ckpt") == 8
    rows = len(metric_rows(out, "train_loss"))
    mtime = (out / "checkpoints" / "last.ckpt").stat().st_mtime_ns

    again = run_tiny(run_env, "--max_epochs", "3", "--constant_val")
    assert again.returncode == 0, again.stderr
    assert start_step(again.stdout) is None  # no training
    assert "run already finished" in again.stderr
    assert score_lines(again.stdout) == [score]  # the platform reads the score from the log

    (out / "model.onnx").unlink()
    third = run_tiny(run_env, "--max_epochs", "3", "--constant_val")
    assert third.returncode == 0, third.stderr
    assert start_step(third.stdout) is None
    assert "re-exported" in third.stderr
    assert (out / "model.onnx").is_file()
    assert len(metric_rows(out, "train_loss")) == rows
    assert (out / "checkpoints" / "last.ckpt").stat().st_mtime_ns == mtime

    changed = run_tiny(run_env, "--max_epochs", "1", "--constant_val", "--lr", "0.2")
    assert changed.returncode == 0, changed.stderr
    assert "config changed (lr, max_epochs), starting fresh" in changed.stderr
    assert start_step(changed.stdout) == 0
    assert list((out / "previous-runs").glob("*/checkpoints/last.ckpt"))


@pytest.mark.slow
def test_torchrun_two_processes(run_env):
    out = run_env["OUTPUT_DIR"]
    proc = run_tiny(run_env, "--max_epochs", "2", torchrun=2)
    assert proc.returncode == 0, proc.stderr
    assert "rank 0 ran" in proc.stdout
    assert "rank 1 ran" in proc.stdout
    assert "distributed_backend=gloo" in proc.stderr
    assert len(score_lines(proc.stdout)) == 1
    assert [p.name for p in out.glob("*.onnx")] == ["model.onnx"]
    calls = (run_env["DATASETS_ROOT"] / "setup_calls").read_text().split()
    assert len(calls) == 1  # dataset setup ran once; the other rank waited and skipped
    assert not (out / "failure").exists()


@pytest.mark.slow
def test_torchrun_sigterm_then_resume(run_env):
    """SIGTERM to the torchrun agent (what a container stop or a preempted pod does), sent by
    rank 0 from inside its training step at step 5: the agent forwards it to both ranks."""
    out = run_env["OUTPUT_DIR"]
    ckpt = out / "checkpoints" / "last.ckpt"
    args = ("--max_epochs", "4")
    first = run_tiny(run_env, *args, torchrun=2, TINY_SIGTERM_AT_STEP="5", TINY_SIGTERM_PARENT="1")
    assert first.returncode != 0
    assert "stopped: train: SIGTERM received" in first.stderr
    assert first.stderr.count("SIGTERM: saved") == 1  # rank 0 wrote it
    step = saved_step(ckpt)
    assert 5 < step < 4 * 4  # 4 batches per rank per epoch: stopped mid-training
    assert not (out / "failure").exists()

    again = run_tiny(run_env, *args, torchrun=2)
    assert again.returncode == 0, again.stderr
    assert start_step(again.stdout) == step
    assert len(score_lines(again.stdout)) == 1


@pytest.mark.slow
def test_torchrun_failure_on_one_rank(run_env):
    proc = run_tiny(run_env, "--fail_at_step", "2", "--fail_rank", "1", torchrun=2)
    assert proc.returncode != 0
    record = json.loads((run_env["OUTPUT_DIR"] / "failure").read_text())
    assert (record["stage"], record["rank"]) == ("train", 1)
    assert record["message"].startswith("CUDA out of memory")
