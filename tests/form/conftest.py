"""Fixtures for the `trainkit form` browser tests: one Chromium per test module. Where it
cannot start, the tests skip with the reason; under CI=true they fail instead."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.form import harness
from tests.support.services import skip_or_fail


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if reason := harness.chromium_missing():
        skip_or_fail(reason)
    try:
        launched = harness.launch_chromium()
        chromium = launched.__enter__()
    except Exception as exc:  # any launch failure is "Chromium cannot start here"
        skip_or_fail(f"headless Chromium did not start: {type(exc).__name__}: {exc}")
    try:
        yield chromium
    finally:
        launched.__exit__(None, None, None)
