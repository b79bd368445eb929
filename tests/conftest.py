"""Shared fixtures. Tests that need FUSE or a container engine skip with a printed reason when
the machine lacks them; under CI=true an s3fs or container test that cannot run fails instead."""

from __future__ import annotations

import functools
from collections.abc import Iterator

import pytest

from tests.support.services import IN_CI, MotoServer, fuse_missing, moto_server


@functools.cache
def _engine_unavailable() -> str | None:
    from trainkit.engine import engine_unavailable

    return engine_unavailable()


def _skip_or_fail(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"CI=true but this test cannot run: {reason}")
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _machine_requirements(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("s3fs") and (reason := fuse_missing()):
        _skip_or_fail(reason)
    if request.node.get_closest_marker("container") and (reason := _engine_unavailable()):
        _skip_or_fail(f"no container engine: {reason}")


@pytest.fixture
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """A fresh moto S3+STS server on a free loopback port, stopped after the test."""
    with moto_server(tmp_path_factory.mktemp("moto")) as server:
        yield server
