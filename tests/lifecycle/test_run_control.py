"""Unit tests of trainkit_runtime/lifecycle.py: ranks, failure file, stages, setup_once (with a
mutation: the same scenario against a no-op lock), the config-hash guard, the Trainer that
trainer_kwargs builds. Fast: only tiny in-process fits (see test_lifecycle_runs.py)."""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import pytest

from tests.lifecycle.conftest import subprocess_env

OOM = "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 7.79 GiB total capacity)"


# --------------------------------------------------------------------------- ranks


@pytest.mark.parametrize(
    ("env", "zero"),
    [
        ({}, True),
        ({"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "2"}, True),
        ({"RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2"}, False),
        ({"RANK": "2", "LOCAL_RANK": "0", "WORLD_SIZE": "4"}, False),  # node 1 of torchrun
        ({"LOCAL_RANK": "1", "NODE_RANK": "0"}, False),  # Lightning's own launcher, child
        ({"LOCAL_RANK": "0", "NODE_RANK": "1"}, False),
        ({"SLURM_PROCID": "0"}, True),
        ({"SLURM_PROCID": "3"}, False),
    ],
)
def test_is_rank_zero_from_launcher_env(rc, monkeypatch, env, zero):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert rc.is_rank_zero() is zero


def test_paths_follow_env(rc, run_env):
    assert rc.output_dir() == run_env["OUTPUT_DIR"]
    assert rc.datasets_root() == run_env["DATASETS_ROOT"]
    assert rc.last_checkpoint_path() == run_env["OUTPUT_DIR"] / "checkpoints" / "last.ckpt"


# --------------------------------------------------------------------------- run_stage failures


def test_exception_writes_failure_file_and_exits_1(rc, run_env, capsys):
    with pytest.raises(SystemExit) as exited, rc.run_stage("train"):
        raise RuntimeError(OOM)
    assert exited.value.code == 1
    err_lines = capsys.readouterr().err.strip().splitlines()
    assert err_lines[-1] == f"error: train: RuntimeError: {OOM}"
    record = json.loads((run_env["OUTPUT_DIR"] / "failure").read_text())
    assert record["stage"] == "train"
    assert record["type"] == "RuntimeError"
    assert record["message"] == OOM
    assert record["rank"] == 0
    assert "batch_size" in record["hint"]
    assert "raise RuntimeError(OOM)" in record["traceback"]


def test_multiline_message_is_one_stderr_line(rc, run_env, capsys):
    with pytest.raises(SystemExit), rc.run_stage("setup"):
        raise ValueError("annotations.xml: image 'a.jpg'\n  has label 'dgo' not in <labels>")
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (
        "error: setup: ValueError: annotations.xml: image 'a.jpg' has label 'dgo' not in <labels>"
    )
    record = rc.read_failure()
    assert record["message"].count("\n") == 1  # the file keeps the message as it was
    assert "hint" not in record


def test_nested_stages_report_once(rc, run_env, capsys):
    with pytest.raises(SystemExit) as exited, rc.run_stage("outer"), rc.run_stage("inner"):
        raise KeyError("labels_train")
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert err.count("error: ") == 1
    assert rc.read_failure()["stage"] == "inner"


def test_first_failure_wins(rc, run_env):
    rc.write_failure("train", RuntimeError("worker 1: image truncated"))
    rc.write_failure("train", RuntimeError("Connection closed by peer"))
    assert rc.read_failure()["message"] == "worker 1: image truncated"


def _backdate(path: Path, when: float) -> None:
    os.utime(path, (when, when))


def test_stale_failure_of_an_earlier_attempt_is_removed(rc, run_env):
    """Relative to this attempt's start (the process start), not to the wall clock: the test
    holds however long the pytest session has been running."""
    failure = run_env["OUTPUT_DIR"] / "failure"
    failure.parent.mkdir(parents=True)
    failure.write_text('{"stage": "train"}\n')
    _backdate(failure, rc.ATTEMPT_START - 5)  # written before this attempt started
    with rc.run_stage("setup"):
        pass
    assert not failure.exists()


def test_failure_of_this_attempt_is_kept(rc, run_env):
    failure = run_env["OUTPUT_DIR"] / "failure"
    failure.parent.mkdir(parents=True)
    failure.write_text('{"stage": "train", "rank": 1}\n')  # another rank, this attempt
    _backdate(failure, rc.ATTEMPT_START + 0.5)
    assert rc.clear_stale_failure() is False
    assert failure.exists()
    # the same file seen by an attempt that started later is stale
    assert rc.clear_stale_failure(attempt_start=rc.ATTEMPT_START + 10) is True
    assert not failure.exists()


def test_other_ranks_do_not_remove_failure_but_record_their_own(rc, run_env, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    failure = run_env["OUTPUT_DIR"] / "failure"
    failure.parent.mkdir(parents=True)
    failure.write_text('{"stage": "old"}\n')
    _backdate(failure, rc.ATTEMPT_START - 5)
    with rc.run_stage("setup"):
        pass
    assert failure.exists()
    failure.unlink()
    with pytest.raises(SystemExit), rc.run_stage("train"):
        raise OSError("cannot identify image file 'broken.jpg'")
    assert rc.read_failure()["rank"] == 1


def test_system_exit_zero_passes_nonzero_is_recorded(rc, run_env, capsys):
    with pytest.raises(SystemExit) as exited, rc.run_stage("train"):
        sys.exit(0)
    assert exited.value.code == 0
    assert rc.read_failure() is None

    with pytest.raises(SystemExit) as exited, rc.run_stage("args"):
        sys.exit(2)  # argparse: it printed its own usage error
    assert exited.value.code == 2
    assert rc.read_failure()["message"] == "exited with status 2"


def test_sys_exit_with_message(rc, run_env, capsys):
    with pytest.raises(SystemExit) as exited, rc.run_stage("export"):
        sys.exit("export_config.json: no input_shapes")
    assert exited.value.code == 1
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith("error: export: export_config.json: no input_shapes")
    )
    assert rc.read_failure()["message"] == "export_config.json: no input_shapes"


def test_keyboard_interrupt_exits_130(rc, run_env, capsys):
    with pytest.raises(SystemExit) as exited, rc.run_stage("train"):
        raise KeyboardInterrupt
    assert exited.value.code == 130
    assert "error: train: interrupted" in capsys.readouterr().err
    assert rc.read_failure()["type"] == "KeyboardInterrupt"


def test_sigterm_outside_training_stops_cleanly(run_env):
    script = textwrap.dedent(
        """
        import os, signal, time
        from trainkit_runtime import lifecycle as rc
        with rc.run_stage("setup"):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(30)
        print("not reached")
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        env=subprocess_env(run_env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 128 + signal.SIGTERM
    assert "not reached" not in proc.stdout
    assert proc.stderr.strip().splitlines()[-1] == "stopped: setup: SIGTERM received"
    assert not (run_env["OUTPUT_DIR"] / "failure").exists()


def test_failure_in_subprocess_exit_code_and_file(run_env):
    script = (
        "from trainkit_runtime import lifecycle as rc\nwith rc.run_stage('export'):\n    1 / 0\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        env=subprocess_env(run_env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "error: export: ZeroDivisionError: division by zero"
    ]
    record = json.loads((run_env["OUTPUT_DIR"] / "failure").read_text())
    assert (record["stage"], record["type"]) == ("export", "ZeroDivisionError")


# --------------------------------------------------------------------------- setup_once


WORKERS = 4


def _lock_waiters(lock_file: Path) -> int:
    """Processes blocked in flock() on lock_file (the "->" entries of /proc/locks)."""
    inode = f":{lock_file.stat().st_ino} "
    lines = Path("/proc/locks").read_text().splitlines()
    return sum(1 for line in lines if "->" in line and inode in line)


@contextlib.contextmanager
def _no_lock(path: Path):
    """The mutation: setup_once without its lock."""
    yield


def _setup_worker(env: dict[str, str], broken_lock: bool) -> None:
    os.environ.update(env)
    from trainkit_runtime import lifecycle as run_control

    if broken_lock:
        run_control.node_lock = _no_lock
    root = run_control.datasets_root()
    lock_file = root / run_control.SETUP_LOCK_FILENAME

    def setup() -> None:
        with (root / "calls").open("a") as fh:
            fh.write(f"{os.getpid()}\n")
        # Deterministic, no start barrier: do not finish until every other worker is either
        # blocked on the lock (it works) or inside this function too (it does not).
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            inside = len((root / "calls").read_text().split())
            if inside == WORKERS or (
                lock_file.exists() and _lock_waiters(lock_file) == WORKERS - 1
            ):
                break
            time.sleep(0.01)
        (root / "images").mkdir(exist_ok=True)

    run_control.setup_once(setup, key="dataset-1")
    # Everyone returns only after the setup is complete.
    assert (root / "images").is_dir()


def _run_setup_workers(run_env, broken_lock: bool) -> list[str]:
    env = {k: str(v) for k, v in run_env.items()}
    run_env["DATASETS_ROOT"].mkdir(parents=True, exist_ok=True)
    (run_env["DATASETS_ROOT"] / "calls").touch()
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_setup_worker, args=(env, broken_lock)) for _ in range(WORKERS)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(90)
    assert [p.exitcode for p in procs] == [0] * WORKERS
    return (run_env["DATASETS_ROOT"] / "calls").read_text().split()


def test_setup_once_runs_once_while_other_processes_wait(run_env):
    assert len(_run_setup_workers(run_env, broken_lock=False)) == 1


def test_setup_once_test_catches_a_missing_lock(run_env):
    """The mutation of the test above: with the lock replaced by a no-op, every worker runs the
    set-up, and the same check sees it."""
    assert len(_run_setup_workers(run_env, broken_lock=True)) == WORKERS


def test_setup_once_key_decides_redo(rc, run_env):
    calls = []
    assert rc.setup_once(lambda: calls.append(1), key={"dataset": 1}) is True
    assert rc.setup_once(lambda: calls.append(2), key={"dataset": 1}) is False
    assert rc.setup_once(lambda: calls.append(3), key={"dataset": 2}) is True
    assert calls == [1, 3]


def test_setup_once_default_key_follows_dataset_id_and_config(rc, run_env, monkeypatch):
    calls = []
    monkeypatch.setenv("DATASET_ID", "1")
    Path("train_config.json").write_text('{"epochs": 1}')
    rc.setup_once(lambda: calls.append("a"))
    rc.setup_once(lambda: calls.append("b"))
    monkeypatch.setenv("DATASET_ID", "2")  # the platform rewrote .env: a new dataset
    rc.setup_once(lambda: calls.append("c"))
    Path("train_config.json").write_text('{"epochs": 2}')
    rc.setup_once(lambda: calls.append("d"))
    assert calls == ["a", "c", "d"]


def test_setup_once_failure_leaves_no_marker(rc, run_env):
    def broken() -> None:
        raise FileNotFoundError("/minio/datasets/1/annotations/annotations.xml")

    with pytest.raises(FileNotFoundError):
        rc.setup_once(broken, key="k")
    calls = []
    assert rc.setup_once(lambda: calls.append(1), key="k") is True
    assert calls == [1]


# --------------------------------------------------------------------------- config hash


def test_config_hash_stable_and_ignores_where_to_run(rc):
    base = {"lr": 0.01, "epochs": 3, "devices": "auto", "train-split": 0.8}
    same = {"train-split": 0.8, "epochs": 3, "lr": 0.01, "devices": 4, "num_nodes": 2}
    assert rc.config_hash(base) == rc.config_hash(same)
    assert rc.config_hash(base) != rc.config_hash({**base, "lr": 0.02})
    assert rc.config_hash(argparse.Namespace(**base)) == rc.config_hash(base)
    assert len(rc.config_hash(base)) == 64


# --------------------------------------------------------------------------- resume state


def _fake_checkpoint(path: Path, *, truncated: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", b"x" * 1000)
    if truncated:
        path.write_bytes(path.read_bytes()[:500])


def test_resume_same_config(rc, run_env, monkeypatch):
    monkeypatch.setenv("DATASET_ID", "7")
    config = {"lr": 0.01, "epochs": 3}
    assert rc.resume_from(config) is None  # first start
    _fake_checkpoint(rc.last_checkpoint_path())
    assert rc.resume_from(config) == "last"  # for trainer.fit(ckpt_path=...)
    assert rc.resume_from({**config, "devices": 2, "checkpoint_minutes": 1}) == "last"


def test_changed_config_starts_fresh_and_keeps_old_checkpoints(rc, run_env, caplog, capsys):
    config = {"lr": 0.01, "epochs": 3}
    rc.resume_from(config)
    _fake_checkpoint(rc.last_checkpoint_path())
    logs = run_env["OUTPUT_DIR"] / "logs"
    logs.mkdir()
    (logs / "metrics.csv").write_text("step,train_loss\n0,1.0\n")

    assert rc.resume_from({**config, "lr": 0.1}) is None
    err = capsys.readouterr().err
    assert "config changed (lr), starting fresh" in err
    moved = list((run_env["OUTPUT_DIR"] / "previous-runs").iterdir())
    assert len(moved) == 1
    assert (moved[0] / "checkpoints" / "last.ckpt").is_file()
    assert (moved[0] / "logs" / "metrics.csv").is_file()
    assert not rc.last_checkpoint_path().exists()
    # the new config is now the one the (empty) checkpoints dir belongs to
    _fake_checkpoint(rc.last_checkpoint_path())
    assert rc.resume_from({**config, "lr": 0.1}) == "last"


def test_changed_dataset_starts_fresh(rc, run_env, monkeypatch, capsys):
    monkeypatch.setenv("DATASET_ID", "1")
    rc.resume_from({"lr": 1})
    _fake_checkpoint(rc.last_checkpoint_path())
    monkeypatch.setenv("DATASET_ID", "2")
    assert rc.resume_from({"lr": 1}) is None
    assert "config changed (DATASET_ID)" in capsys.readouterr().err


def test_truncated_checkpoint_starts_fresh(rc, run_env, capsys):
    rc.resume_from({"lr": 1})
    _fake_checkpoint(rc.last_checkpoint_path(), truncated=True)
    assert rc.resume_from({"lr": 1}) is None
    assert "unreadable" in capsys.readouterr().err
    assert list((run_env["OUTPUT_DIR"] / "previous-runs").glob("*/checkpoints/last.ckpt"))


def test_checkpoint_without_run_state_is_not_trusted(rc, run_env, capsys):
    _fake_checkpoint(rc.last_checkpoint_path())
    assert rc.resume_from({"lr": 1}) is None
    assert "config changed" in capsys.readouterr().err


def test_other_ranks_do_not_move_or_write(rc, run_env, monkeypatch):
    rc.resume_from({"lr": 1})
    _fake_checkpoint(rc.last_checkpoint_path())
    monkeypatch.setenv("RANK", "1")
    assert rc.resume_from({"lr": 2}) is None
    assert rc.last_checkpoint_path().exists()  # only rank 0 moves files
    run_state = json.loads((rc.checkpoint_dir() / "run.json").read_text())
    assert run_state["config"]["lr"] == 1


def test_finished_marker(rc, run_env):
    config = {"lr": 0.01}
    assert rc.finished_info(config) is None
    rc.write_failure("train", RuntimeError("earlier attempt"))
    rc.mark_finished(config, score=0.875)
    assert rc.finished_info(config) is not None
    assert rc.finished_info(config)["score"] == 0.875
    assert rc.finished_info({"lr": 0.02}) is None
    assert rc.read_failure() is None


# --------------------------------------------------------------------------- trainer_kwargs


def _trainer(rc, **args):
    """The Trainer train.py builds (no fit: nothing is launched)."""
    import lightning as L

    return L.Trainer(**rc.trainer_kwargs(argparse.Namespace(**args), monitor="val_acc"))


def test_trainer_kwargs_defaults(rc, run_env):
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    trainer = _trainer(rc, accelerator="cpu")
    assert (trainer.world_size, trainer.num_devices, trainer.num_nodes) == (1, 1, 1)
    assert trainer.precision == "32-true"
    assert trainer.progress_bar_callback is None  # stderr is not a terminal under pytest
    (csv,) = [lg for lg in trainer.loggers if isinstance(lg, CSVLogger)]
    assert Path(csv.log_dir) == run_env["OUTPUT_DIR"] / "logs"
    best, last, timed = (cb for cb in trainer.callbacks if isinstance(cb, ModelCheckpoint))
    assert trainer.checkpoint_callback is best  # ckpt_path="best" uses the first one
    ckpts = run_env["OUTPUT_DIR"] / "checkpoints"
    assert {Path(cb.dirpath) for cb in (best, last, timed)} == {ckpts}
    assert (best.monitor, best.mode, best.filename, best.save_top_k) == (
        "val_acc",
        "max",
        "best",
        1,
    )
    # last.ckpt at every epoch end: unmonitored, so it never goes stale (see the test below)
    assert (last.monitor, last.filename, last.save_top_k, last.every_n_epochs) == (
        None,
        "last",
        1,
        1,
    )
    # ... and every checkpoint-minutes (default 10) through Lightning's save_last
    assert (timed.save_last, timed.save_top_k) == (True, 0)
    assert timed._train_time_interval.total_seconds() == 600
    assert type(trainer.strategy.checkpoint_io).__name__ == "AtomicCheckpointIO"


def test_trainer_kwargs_from_args(rc, run_env):
    trainer = _trainer(rc, accelerator="cpu", devices=2, precision="bf16-mixed")
    assert type(trainer.strategy).__name__ == "DDPStrategy"  # Lightning's choice for devices>1
    assert trainer.num_devices == 2
    assert trainer.precision == "bf16-mixed"
    kw = rc.trainer_kwargs(argparse.Namespace(checkpoint_minutes=0.5))
    timed = kw["callbacks"][-2]
    assert timed._train_time_interval.total_seconds() == 30


def test_trainer_kwargs_under_torchrun(rc, run_env, monkeypatch):
    env = {
        "TORCHELASTIC_RUN_ID": "x",
        "LOCAL_WORLD_SIZE": "2",
        "WORLD_SIZE": "4",
        "RANK": "0",
        "LOCAL_RANK": "0",
        "GROUP_RANK": "0",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": "29500",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    # the config says 1 device on 1 node; torchrun's world wins (Lightning refuses a mismatch)
    trainer = _trainer(rc, accelerator="cpu", devices=1, num_nodes=1)
    assert (trainer.num_devices, trainer.num_nodes, trainer.world_size) == (2, 2, 4)
    assert type(trainer.strategy.cluster_environment).__name__ == "TorchElasticEnvironment"


def test_trainer_kwargs_under_cluster_env(rc, run_env, monkeypatch):
    # Kubeflow PyTorchJob: one process per pod, RANK = pod index, no LOCAL_RANK.
    for key, value in {
        "MASTER_ADDR": "job-master-0",
        "MASTER_PORT": "23456",
        "WORLD_SIZE": "3",
        "RANK": "2",
    }.items():
        monkeypatch.setenv(key, value)
    trainer = _trainer(rc, accelerator="cpu")
    assert (trainer.num_devices, trainer.num_nodes) == (1, 3)
    env = trainer.strategy.cluster_environment
    assert type(env).__name__ == "KubeflowEnvironment"
    assert (env.global_rank(), env.node_rank(), env.world_size()) == (2, 2, 3)


class _ConstantScore:
    """A tiny LightningModule whose validation score never improves after epoch 0."""

    @staticmethod
    def make():
        import lightning as L
        import torch
        from torch import nn

        class Module(L.LightningModule):
            def __init__(self):
                super().__init__()
                self.net = nn.Linear(2, 2)

            def training_step(self, batch, batch_idx):
                return self.net(batch[0]).sum()

            def validation_step(self, batch, batch_idx):
                self.log("score", 0.5)

            def configure_optimizers(self):
                return torch.optim.SGD(self.parameters(), lr=0.01)

        return Module()


def _loader():
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    return DataLoader(TensorDataset(torch.randn(8, 2)), batch_size=4)  # 2 steps per epoch


def _saved_step(path: Path) -> int:
    import torch

    return int(torch.load(path, map_location="cpu", weights_only=False)["global_step"])


def test_lightning_save_last_goes_stale_when_the_score_plateaus(tmp_path):
    """Why last.ckpt has its own unmonitored ModelCheckpoint: with the installed Lightning,
    save_last=True on a monitored callback writes last.ckpt only in a step where the score
    improved. If this fails, Lightning changed and the extra callback can go."""
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint

    callback = ModelCheckpoint(tmp_path, monitor="score", mode="max", save_last=True)
    trainer = L.Trainer(
        max_epochs=3,
        callbacks=[callback],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    trainer.fit(_ConstantScore.make(), _loader(), _loader())
    assert trainer.global_step == 6
    assert _saved_step(tmp_path / "last.ckpt") == 2  # stale: written after epoch 0 only


def test_our_last_checkpoint_follows_training_when_the_score_plateaus(rc, run_env):
    import lightning as L

    kw = rc.trainer_kwargs(argparse.Namespace(accelerator="cpu"), monitor="score")
    trainer = L.Trainer(max_epochs=3, enable_model_summary=False, **kw)
    trainer.fit(_ConstantScore.make(), _loader(), _loader())
    assert _saved_step(rc.last_checkpoint_path()) == 6
    assert _saved_step(rc.checkpoint_dir() / "best.ckpt") == 2


def test_atomic_checkpoint_io_keeps_the_old_file_when_a_save_dies(rc, run_env, monkeypatch):
    from lightning.pytorch.plugins.io import TorchCheckpointIO

    io = rc.trainer_kwargs(argparse.Namespace())["plugins"][-1]
    target = run_env["OUTPUT_DIR"] / "last.ckpt"
    io.save_checkpoint({"global_step": 1}, target)
    before = target.read_bytes()

    def dies_half_way(self, checkpoint, path, storage_options=None):
        Path(path).write_bytes(b"PK\x03\x04 half a checkpoint")
        raise OSError("killed while writing")

    monkeypatch.setattr(TorchCheckpointIO, "save_checkpoint", dies_half_way)
    with pytest.raises(OSError, match="killed"):
        io.save_checkpoint({"global_step": 2}, target)
    assert target.read_bytes() == before


def test_setup_once_survives_setup_rewriting_train_config(rc, run_env, monkeypatch):
    # setup.py's finalize_config adds num-classes to train_config.json: train.py's setup_once
    # afterwards must still see the setup as done.
    monkeypatch.setenv("DATASET_ID", "1")
    Path("train_config.json").write_text('{"epochs": 1}')
    calls = []

    def setup() -> None:
        calls.append(1)
        Path("train_config.json").write_text('{"epochs": 1, "num-classes": 3}')

    assert rc.setup_once(setup) is True
    assert rc.setup_once(setup) is False
    assert calls == [1]
