"""Shared fixtures and the machine-requirement gate.

Tests marked `s3fs` need FUSE and s3fs-fuse, tests marked `container` a container engine. The
gate runs in `pytest_runtest_setup` before any fixture of the test is set up, so a session
fixture such as `engine` or `base_image` (tests/container/conftest.py, minutes of base-image
build) never runs, or raises, on a machine that cannot run the test: the test skips with the
reason, and under CI=true it fails with the reason instead."""

from __future__ import annotations

import functools
from collections.abc import Iterator

import pytest

from tests.support.services import MotoServer, fuse_missing, moto_server, skip_or_fail


@functools.cache
def _engine_unavailable() -> str | None:
    from trainkit.engine import engine_unavailable

    return engine_unavailable()


def machine_lacks(item: pytest.Item) -> str | None:
    """Why this machine cannot run `item` (by its markers), or None."""
    if item.get_closest_marker("s3fs") and (reason := fuse_missing()):
        return reason
    if item.get_closest_marker("container") and (reason := _engine_unavailable()):
        return f"no container engine: {reason}"
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if reason := machine_lacks(item):
        skip_or_fail(reason)


@pytest.fixture
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """A fresh moto S3+STS server on a free loopback port, stopped after the test."""
    with moto_server(tmp_path_factory.mktemp("moto")) as server:
        yield server
