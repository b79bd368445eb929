"""The S3 request budget of dataset setup over a real s3fs mount (a count, not a time), as the
README states it (measured with benchmarks/bench_s3_requests.py, s3fs 1.90 against moto):
1,000 images 17 requests, 10,000 images 26. The file list is ListObjectsV2 pages (one per 1,000
keys, ours, via boto3); s3fs adds a fixed cost per path component and for the annotation file;
no image is stat'ed or read, and nothing lists the dataset folder through the mount (a readdir
through s3fs is a v1 listing plus one HEAD per object).

Exact counts, not bounds: an extra readdir, lookup or listing page is a regression of a
README figure (re-measure with the benchmark and update both when s3fs changes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.bench_s3_requests import BUCKET, DATASET_ID, measure
from tests.support.s3 import describe_request, mounts_below

pytestmark = [pytest.mark.s3fs, pytest.mark.slow]

DATASET = f"datasets/{DATASET_ID}"
# s3fs resolving one folder: HEAD `x`, `x/`, `x_$folder$`, then a 2-key v1 listing below it.
FOLDER_LOOKUP = ["HEAD {f}", "HEAD {f}/", "HEAD {f}_$folder$", "LIST1 max-keys=2 prefix={f}/"]


def expected_requests(pages: int) -> list[str]:
    """Setup's requests, as `describe_request` renders them (compared as a multiset: the
    order of the lookups is s3fs's business)."""
    lookups = [
        line.format(f=folder)
        for folder in ("datasets", DATASET, f"{DATASET}/annotations")
        for line in FOLDER_LOOKUP
    ]
    annotation = f"HEAD {DATASET}/annotations/annotations.xml"
    listing = [f"LIST2 max-keys=1000 prefix={DATASET}/ page={page}" for page in range(pages)]
    return [
        *lookups,
        annotation,
        *listing,
        annotation,
        f"GET {DATASET}/annotations/annotations.xml",
    ]


@pytest.mark.parametrize(
    ("images", "pages", "total"),
    [(1000, 2, 17), (10_000, 11, 26)],  # 1,000 images + the `annotations/` prefix = 1,001 keys
    ids=["1k", "10k"],
)
def test_setup_request_budget_is_the_readme_figure(tmp_path: Path, images, pages, total):
    report = measure(images, tmp_path, keep_requests=True)
    assert report["linked"] == images
    pages_seen: dict[str, int] = {}
    seen = [
        describe_request(method, target, BUCKET, pages_seen)
        for method, target in report["request_lines"]
    ]
    assert sorted(seen) == sorted(expected_requests(pages))
    assert len(seen) == total
    # The benchmark's classes agree (what its printed figures are made of).
    assert report["requests"] == {
        "dir_lookup": 8,
        "annotation": 7,
        "list_v2": pages,
        "total": total,
    }
    assert mounts_below(tmp_path) == []
