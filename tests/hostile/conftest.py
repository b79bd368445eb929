"""Fixtures of the hostile-input suite: a copy of a real architecture to break, and a mocked
MinIO folder beside it (what `trainkit run` needs to get as far as its checks)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support.cvat import Runtime, runtime_fixture
from tests.support.repo import EXAMPLES_DIR


@pytest.fixture
def runtime(tmp_path, monkeypatch) -> Runtime:
    """The dataset runtime in-process with temp roots (tests/support/cvat.py)."""
    yield from runtime_fixture(tmp_path, monkeypatch)


@pytest.fixture
def arch_copy(tmp_path) -> Path:
    """templates/Acme/Classification/TinyNet (the committed example) copied into tmp_path,
    with tmp_path/minio/datasets/1/ (empty: the refusals come before any set-up)."""
    arch = tmp_path / "templates" / "Acme" / "Classification" / "TinyNet"
    shutil.copytree(EXAMPLES_DIR / "Acme" / "Classification" / "TinyNet", arch)
    (tmp_path / "minio" / "datasets" / "1").mkdir(parents=True)
    return arch


def run_args(arch: Path, *extra: str, dataset_id: str = "1") -> list[str]:
    return ["run", str(arch), "--minio", "minio", "--dataset-id", dataset_id, *extra]
