"""Fixtures for the `trainkit form` browser tests: one Chromium per test module. Where it
cannot start, the tests skip with the reason; under CI=true they fail instead."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.form import harness
from tests.support.services import IN_CI


def _skip_or_fail(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"CI=true but the browser test cannot run: {reason}")
    print(f"SKIP browser test: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if reason := harness.chromium_missing():
        _skip_or_fail(reason)
    try:
        launched = harness.launch_chromium()
        chromium = launched.__enter__()
    except Exception as exc:  # any launch failure is "Chromium cannot start here"
        _skip_or_fail(f"headless Chromium did not start: {type(exc).__name__}: {exc}")
    try:
        yield chromium
    finally:
        launched.__exit__(None, None, None)
