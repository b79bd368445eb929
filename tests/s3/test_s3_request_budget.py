"""The S3 request budget of dataset setup over a real s3fs mount (a count, not a time):
ListObjectsV2 instead of a readdir (one HEAD per object), no stat of symlink targets."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.bench_s3_requests import measure
from tests.support.s3 import mounts_below

pytestmark = [pytest.mark.s3fs, pytest.mark.slow]


def test_setup_of_1000_images_costs_at_most_2_requests_per_1000_images(tmp_path: Path):
    report = measure(1000, tmp_path)
    counts = report["requests"]
    assert report["linked"] == 1000
    assert counts.get("image", 0) == 0, counts  # symlinks are made without a HEAD per file
    assert counts.get("list_v2", 0) in (1, 2), counts  # 1,000 keys (+ annotations/) a page
    assert report["per_1000_images"] <= 2, report
    assert counts.get("dir_lookup", 0) <= 8, counts  # datasets/ and datasets/<id>/, once each
    assert counts.get("annotation", 0) <= 8, counts
    assert mounts_below(tmp_path) == []
