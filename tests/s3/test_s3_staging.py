"""Data modes over a real s3fs mount of moto (benchmarks/bench_s3_epochs.py does the runs):
`stage` costs the listing pages + exactly one GET per image and nothing in any epoch or on a
second setup, resumes after being killed mid-way, and is refused in one line when the disk is
short (a real small tmpfs); `stream` keeps links into the mount and costs 1 HEAD per image from
the second epoch on."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks.bench_s3_epochs import classify_methods, make_workspace, measure, read_epoch
from benchmarks.bench_s3_requests import BUCKET, environment, image_payload, mount, upload_dataset
from tests.support.s3 import mounts_below, unmount
from tests.support.services import moto_server

pytestmark = [pytest.mark.s3fs, pytest.mark.slow]

IMAGE_GET = re.compile(rf'"GET /{BUCKET}/datasets/1/(?!annotations)([^ ?]+) HTTP')


def image_gets(lines: list[str]) -> list[str]:
    return [m.group(1) for line in lines if (m := IMAGE_GET.search(line))]


def split_links(datasets: Path) -> dict[str, Path]:
    return {
        link.name: Path(os.readlink(link))
        for split in ("train", "val")
        for link in (datasets / "images" / split).iterdir()
    }


def test_stage_is_listing_plus_one_get_per_image_then_nothing(tmp_path: Path):
    report = measure(300, tmp_path, "stage", setup_again=True)
    setup = report["setup"]["requests"]
    assert setup["image GET"] == 300, setup
    assert "image HEAD" not in setup, setup  # sizes come from the listing, not from HEADs
    assert setup["list_v2 GET"] == 1, setup  # 300 keys + annotations/: one page
    for name in ("epoch1", "epoch2"):
        assert report[name]["requests"] == {"total": 0}, report[name]
        assert report[name]["bytes"] == 300 * 4096
    again = report["setup2"]["requests"]
    assert not {k for k in again if k.startswith("image")}, again  # nothing fetched again
    assert again["list_v2 GET"] == 1, again
    links = split_links(tmp_path / "datasets")
    assert len(links) == 300
    staged = tmp_path / "datasets" / "staged" / "1"
    assert {target.parent for target in links.values()} == {staged}
    assert all(target.read_bytes() == image_payload(name, 4096) for name, target in links.items())
    assert mounts_below(tmp_path) == []


def test_stream_links_into_the_mount_and_rereads_cost_one_head(tmp_path: Path):
    report = measure(200, tmp_path, "stream")
    assert not {k for k in report["setup"]["requests"] if k.startswith("image")}
    first, second = report["epoch1"]["requests"], report["epoch2"]["requests"]
    assert first["image GET"] == 200, first  # s3fs's local file cache keeps the bytes
    assert second == {"total": 200, "image HEAD": 200}, second  # s3fs_open re-stats each file
    links = split_links(tmp_path / "datasets")
    assert {target.parent for target in links.values()} == {tmp_path / "minio" / "datasets" / "1"}


def _complete(stage_dir: Path) -> set[str]:
    if not stage_dir.is_dir():
        return set()
    return {p.name for p in stage_dir.iterdir() if not p.name.startswith(".")}


def test_stage_killed_mid_way_resumes_without_fetching_complete_files(tmp_path: Path):
    n = 300
    with moto_server(tmp_path) as server:
        upload_dataset(server, tmp_path / "upload", n, image_bytes=4096)
        env = {**environment(tmp_path, server, "stage"), "TRAINKIT_STAGE_WORKERS": "1"}
        minio, datasets = Path(env["MINIO_ROOT"]), Path(env["DATASETS_ROOT"])
        stage_dir = datasets / "staged" / "1"
        try:
            mount(env)
            workspace = make_workspace(tmp_path)
            before = len(server.requests_seen())
            proc = subprocess.Popen(
                [sys.executable, "setup.py"],
                cwd=workspace,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + 120
            while len(_complete(stage_dir)) < 40 and proc.poll() is None:
                assert time.monotonic() < deadline, "staging did not start"
                time.sleep(0.01)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            complete = _complete(stage_dir)
            assert 40 <= len(complete) < n, len(complete)  # killed mid-way
            first = image_gets(server.requests_seen()[before:])

            before = len(server.requests_seen())
            result = subprocess.run(
                [sys.executable, "setup.py"], cwd=workspace, env=env, capture_output=True,
                text=True, timeout=600, check=False,
            )  # fmt: skip
            assert result.returncode == 0, result.stderr
            second = image_gets(server.requests_seen()[before:])
            names = {f"synthetic_{i:06d}.jpg" for i in range(n)}
            assert sorted(second) == sorted(names - complete)  # only what was not complete
            assert set(first) | set(second) == names
            assert not list(stage_dir.glob(".*.part"))  # the half-written file is gone
            assert _complete(stage_dir) == names
            before = len(server.requests_seen())
            assert read_epoch(datasets) == n * 4096
            assert classify_methods(server.requests_seen()[before:]) == {"total": 0}
        finally:
            unmount(minio)


@pytest.fixture
def small_disk(tmp_path: Path):
    """A real 256 KiB tmpfs (root only, as the FUSE mounts these tests make)."""
    path = tmp_path / "small-disk"
    path.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs at {path}: {result.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


@pytest.mark.parametrize("mode", ["stage", "auto"])
def test_short_disk_refuses_stage_in_one_line_and_auto_streams(
    tmp_path: Path, small_disk: Path, mode: str
):
    with moto_server(tmp_path) as server:
        upload_dataset(server, tmp_path / "upload", 100, image_bytes=8192)  # 800 KB > 256 KiB
        env = {
            **environment(tmp_path, server, mode),
            "TRAINKIT_STAGE_DIR": str(small_disk),
            "TRAINKIT_STAGE_RESERVE_MB": "0",
        }
        minio, datasets = Path(env["MINIO_ROOT"]), Path(env["DATASETS_ROOT"])
        try:
            mount(env)
            workspace = make_workspace(tmp_path)
            before = len(server.requests_seen())
            result = subprocess.run(
                [sys.executable, "setup.py"], cwd=workspace, env=env, capture_output=True,
                text=True, timeout=600, check=False,
            )  # fmt: skip
            assert image_gets(server.requests_seen()[before:]) == []
            assert list(small_disk.iterdir()) == []
            if mode == "stage":
                assert result.returncode == 1
                last = result.stderr.strip().splitlines()[-1]
                assert last.startswith("dataset error: cannot stage dataset 1: 100 files ("), last
                assert f"to download to {small_disk / '1'}" in last
                assert "Traceback" not in result.stderr
            else:
                assert result.returncode == 0, result.stderr
                assert "data mode stream (TRAINKIT_DATA_MODE=auto: does not fit" in result.stderr
                links = split_links(datasets)
                assert {t.parent for t in links.values()} == {minio / "datasets" / "1"}
        finally:
            unmount(minio)
