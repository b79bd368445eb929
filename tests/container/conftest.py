"""Fixtures for the container tests: the engine trainkit picks here and the offline base image
(scripts/build-test-base-image; a cold build takes minutes, later runs take it from the cache)."""

from __future__ import annotations

import pytest

from trainkit import engine as engine_mod


@pytest.fixture(scope="session")
def engine() -> engine_mod.Engine:
    return engine_mod.detect_engine("auto")


@pytest.fixture(scope="session")
def base_image(engine: engine_mod.Engine) -> str:
    return engine_mod.ensure_local_base_image(engine)
