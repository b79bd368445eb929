"""Fixtures for the run_control tests: a clean launcher environment and a fresh module."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
TINY_TRAIN = Path(__file__).with_name("tiny_train.py")

LAUNCHER_ENV = (
    "RANK",
    "LOCAL_RANK",
    "NODE_RANK",
    "GROUP_RANK",
    "WORLD_SIZE",
    "LOCAL_WORLD_SIZE",
    "MASTER_ADDR",
    "MASTER_PORT",
    "TORCHELASTIC_RUN_ID",
    "SLURM_PROCID",
    "SLURM_LOCALID",
    "SLURM_NTASKS",
    "JSM_NAMESPACE_RANK",
    "DATASET_ID",
    "TRAINKIT_TRACEBACK",
)


@pytest.fixture
def run_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """OUTPUT_DIR/DATASETS_ROOT/MINIO_ROOT in tmp_path, no distributed launcher variables."""
    for name in LAUNCHER_ENV:
        monkeypatch.delenv(name, raising=False)
    paths = {
        "OUTPUT_DIR": tmp_path / "output",
        "DATASETS_ROOT": tmp_path / "datasets",
        "MINIO_ROOT": tmp_path / "minio",
    }
    for name, path in paths.items():
        monkeypatch.setenv(name, str(path))
    monkeypatch.chdir(tmp_path)
    return paths


@pytest.fixture
def rc(run_env: dict[str, Path]) -> Iterator[ModuleType]:
    """trainkit_runtime.lifecycle with fresh module state (its once-per-process flags)."""
    from trainkit_runtime import lifecycle as run_control

    module = importlib.reload(run_control)
    yield module
    sys.modules["trainkit_runtime.lifecycle"] = module


def subprocess_env(run_env: dict[str, Path], **extra: str) -> dict[str, str]:
    """Environment for a child python that imports the runtime (trainkit_runtime.lifecycle)."""
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_ENV}
    env.update({k: str(v) for k, v in run_env.items()})
    env["PYTHONPATH"] = str(REPO)
    env.update(extra)
    return env
