"""Fixtures for the dataset runtime tests; helpers live in tests/support/cvat.py."""

from __future__ import annotations

import pytest

from tests.support.cvat import DATA, Runtime, Workspace, make_workspace, runtime_fixture


@pytest.fixture
def runtime(tmp_path, monkeypatch) -> Runtime:
    yield from runtime_fixture(tmp_path, monkeypatch)


@pytest.fixture
def stock_workspace(tmp_path) -> Workspace:
    return make_workspace(tmp_path, DATA / "stock_setup_classification.py")
