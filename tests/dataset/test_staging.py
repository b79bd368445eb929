"""Data modes (trainkit_runtime/staging.py) against a real moto S3 server: which mode, its
default and where it is read from; `stage` = one GET per image (keys and sizes from the
set-up's own ListObjectsV2 listing), resumable, refused when the disk is short; `stream` links
into the mount. The s3fs mount itself is pretended here (path-aware `s3fs_mount_point`); the
real-mount version of these checks is tests/s3/test_s3_staging.py."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from tests.support.cvat import tag_image, task_xml
from trainkit_runtime import dataset, staging
from trainkit_runtime.dataset import DatasetError

BUCKET = "bucket"


def _client(moto):
    return boto3.client(
        "s3",
        endpoint_url=moto.url,
        aws_access_key_id="k",
        aws_secret_access_key="s",
        region_name="us-east-1",
    )


def image_bytes(name: str) -> bytes:
    return f"image {name} ".encode() * 40


@pytest.fixture
def s3_dataset(runtime, moto, tmp_path, monkeypatch):
    """12 tagged images in a moto bucket (datasets/1/), the annotations also in the pretended
    mount; S3_HOST etc. set as mount-s3.sh leaves them. Returns the image names."""
    names = [f"img_{i:02d}.png" for i in range(12)]
    images = "".join(tag_image(n, "a" if i % 2 else "b", i) for i, n in enumerate(names))
    xml = runtime.write_annotations(task_xml(["a", "b"], images))
    client = _client(moto)
    client.create_bucket(Bucket=BUCKET)
    for name in names:
        client.put_object(Bucket=BUCKET, Key=f"datasets/1/{name}", Body=image_bytes(name))
        (runtime.dataset_dir / name).write_bytes(image_bytes(name))  # what s3fs would show
    client.put_object(
        Bucket=BUCKET, Key="datasets/1/annotations/annotations.xml", Body=xml.read_bytes()
    )
    creds = tmp_path / "credentials"
    creds.write_text("[dataset]\naws_access_key_id=k\naws_secret_access_key=s\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds))
    monkeypatch.setenv("S3_HOST", moto.url)
    monkeypatch.setenv("S3_BUCKET_NAME", BUCKET)
    minio = str(runtime.minio)
    monkeypatch.setattr(
        dataset, "s3fs_mount_point", lambda path: minio if str(path).startswith(minio) else None
    )
    return names


def image_requests(moto, method: str, since: int = 0) -> list[str]:
    """The image keys `method` requests went to (moto's access log), in order."""
    keys = []
    for line in moto.requests_seen()[since:]:
        match = re.search(rf'"{method} /{BUCKET}/datasets/1/([^ ?]+)', line)
        if match and not match.group(1).startswith("annotations"):
            keys.append(match.group(1))
    return keys


def listing_pages(moto, since: int = 0) -> int:
    return sum("list-type=2" in line for line in moto.requests_seen()[since:])


def setup(runtime) -> tuple[dict, dict]:
    cd = runtime.cvat
    _, _, train, val = cd.get_cvat_dataset()
    cd.create_directory_structure()
    cd.create_train_images(train)
    cd.create_test_images(val)
    return train, val


def linked(runtime) -> dict[str, str]:
    out = {}
    for split in ("train", "val"):
        for link in (runtime.datasets / "images" / split).iterdir():
            out[link.name] = os.readlink(link)
    return out


def short_of_disk(runtime, monkeypatch) -> None:
    """Ask staging to keep more free than the disk has (100 GB more: other processes on the
    machine change the free space meanwhile)."""
    st = os.statvfs(runtime.datasets)
    monkeypatch.setenv(
        "TRAINKIT_STAGE_RESERVE_MB", str(st.f_bavail * st.f_frsize // 2**20 + 100_000)
    )


# --- the mode and where it comes from --------------------------------------------------------


def test_default_mode_is_auto(runtime):
    assert staging.configured_mode() == "auto"


@pytest.mark.parametrize("value", ["stage", "STREAM", " auto ", ""])
def test_mode_from_the_environment(runtime, monkeypatch, value):
    monkeypatch.setenv("TRAINKIT_DATA_MODE", value)
    assert staging.configured_mode() == (value.strip().lower() or "auto")


@pytest.mark.parametrize(
    "line",
    [
        "TRAINKIT_DATA_MODE=stream",
        "export TRAINKIT_DATA_MODE=stream",
        "TRAINKIT_DATA_MODE='stream'",  # python-dotenv's set_key (the platform's .env rewrite)
        'TRAINKIT_DATA_MODE="stream"  ',
        "TRAINKIT_DATA_MODE = stream # read through the mount",
    ],
)
def test_mode_from_dot_env(runtime, line):
    (runtime.workdir / ".env").write_text(f"DATASET_ID=1\n# TRAINKIT_DATA_MODE=stage\n{line}\n")
    assert staging.configured_mode() == "stream"


def test_environment_wins_over_dot_env_and_last_line_wins(runtime, monkeypatch):
    (runtime.workdir / ".env").write_text("TRAINKIT_DATA_MODE=stream\nTRAINKIT_DATA_MODE=stage\n")
    assert staging.configured_mode() == "stage"
    monkeypatch.setenv("TRAINKIT_DATA_MODE", "stream")
    assert staging.configured_mode() == "stream"


def test_bad_mode_is_one_error_naming_value_and_source(runtime, monkeypatch):
    (runtime.workdir / ".env").write_text("TRAINKIT_DATA_MODE=fast\n")
    with pytest.raises(DatasetError, match=r"TRAINKIT_DATA_MODE='fast' \(from the \.env\)"):
        staging.configured_mode()
    monkeypatch.setenv("TRAINKIT_DATA_MODE", "copy")
    with pytest.raises(DatasetError, match=r"'copy' .from the environment. is not one of auto"):
        staging.configured_mode()


def test_dot_env_is_read_by_the_entrypoints_rules(runtime):
    """The allowlist of envfile.py applies: the stage directory (a path where files are
    written) cannot come from a template's .env, and a refused line is one DatasetError."""
    (runtime.workdir / ".env").write_text("TRAINKIT_STAGE_DIR=/home\n")
    with pytest.raises(DatasetError, match=r"\.env line 1: TRAINKIT_STAGE_DIR may not be set"):
        staging.configured_mode()
    (runtime.workdir / ".env").write_text("TRAINKIT_STAGE_WORKERS=4\nTRAINKIT_STAGE_RESERVE_MB=0\n")
    assert staging.reserve_bytes() == 0 and staging._workers() == 4


def test_stock_entrypoint_source_dot_env_reaches_the_runtime(tmp_path):
    """The platform's entrypoint runs `source .env` (keys not exported) then setup.py: the
    runtime still sees the mode, because it reads .env itself."""
    (tmp_path / ".env").write_text("DATASET_ID=1\nTRAINKIT_DATA_MODE=stream\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINKIT_")}
    code = "from trainkit_runtime.staging import configured_mode; print(configured_mode())"
    script = (
        f"source .env; test -z \"$(printenv TRAINKIT_DATA_MODE)\"; {sys.executable} -c '{code}'"
    )
    proc = subprocess.run(
        ["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "stream"


def test_setup_once_key_changes_with_the_mode(runtime, monkeypatch):
    from trainkit_runtime.lifecycle import _setup_key

    auto = _setup_key(None)
    monkeypatch.setenv("TRAINKIT_DATA_MODE", "stream")
    assert _setup_key(None) != auto


# --- local folder ----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["auto", "stage", "stream"])
def test_a_local_folder_is_linked_in_every_mode(runtime, monkeypatch, mode):
    monkeypatch.setenv("TRAINKIT_DATA_MODE", mode)
    runtime.add_files("a.jpg", "b.jpg")
    runtime.write_annotations(task_xml(["x"], tag_image("a.jpg", "x") + tag_image("b.jpg", "x", 1)))
    runtime.write_config({"train-split": 0.5, "test-split": 0.5})
    setup(runtime)
    assert set(linked(runtime).values()) == {
        str(runtime.dataset_dir / "a.jpg"),
        str(runtime.dataset_dir / "b.jpg"),
    }
    assert not (runtime.datasets / "staged").exists()


# --- S3 --------------------------------------------------------------------------------------


def test_stage_costs_one_get_per_image_and_links_local_copies(runtime, moto, s3_dataset):
    before = len(moto.requests_seen())
    train, val = setup(runtime)
    stage_dir = runtime.datasets / "staged" / "1"
    assert sorted(image_requests(moto, "GET", before)) == sorted(s3_dataset)  # each once
    assert image_requests(moto, "HEAD", before) == []
    assert listing_pages(moto, before) == 1
    links = linked(runtime)
    assert sorted(links) == sorted(s3_dataset)
    assert all(Path(t).parent == stage_dir for t in links.values())
    for name in s3_dataset:
        assert (stage_dir / name).read_bytes() == image_bytes(name)
    # The API's keys still name the files under the mount (the platform's contract).
    assert all(p.parent == runtime.dataset_dir for p in {**train, **val})
    # A second setup (a restarted container) fetches nothing: listing again, no image request.
    dataset._last_listing = None
    again = len(moto.requests_seen())
    setup(runtime)
    assert image_requests(moto, "GET", again) == [] and image_requests(moto, "HEAD", again) == []
    assert listing_pages(moto, again) == 1
    assert linked(runtime) == links


def test_stage_resumes_and_fetches_only_what_is_incomplete(runtime, moto, s3_dataset):
    client = _client(moto)
    setup(runtime)
    stage_dir = runtime.datasets / "staged" / "1"
    # What an interrupted run leaves: a half-written hidden part file, a truncated copy, a
    # copy whose object changed since (new mtime), and a missing one.
    (stage_dir / s3_dataset[0]).unlink()
    (stage_dir / s3_dataset[1]).write_bytes(b"trunc")
    os.utime(stage_dir / s3_dataset[2], (1, 1))
    (stage_dir / ".img_03.png.x1.part").write_bytes(b"half")
    client.put_object(Bucket=BUCKET, Key=f"datasets/1/{s3_dataset[3]}", Body=b"changed")
    dataset._last_listing = None
    before = len(moto.requests_seen())
    setup(runtime)
    assert sorted(image_requests(moto, "GET", before)) == sorted(s3_dataset[:4])
    assert not list(stage_dir.glob(".*.part"))
    assert (stage_dir / s3_dataset[1]).read_bytes() == image_bytes(s3_dataset[1])
    assert (stage_dir / s3_dataset[3]).read_bytes() == b"changed"


def test_stream_links_into_the_mount_and_fetches_nothing(runtime, moto, s3_dataset, monkeypatch):
    monkeypatch.setenv("TRAINKIT_DATA_MODE", "stream")
    before = len(moto.requests_seen())
    setup(runtime)
    assert image_requests(moto, "GET", before) == []
    assert {Path(t).parent for t in linked(runtime).values()} == {runtime.dataset_dir}
    assert not (runtime.datasets / "staged").exists()


def test_switching_stage_to_stream_relinks(runtime, moto, s3_dataset, monkeypatch):
    setup(runtime)
    monkeypatch.setenv("TRAINKIT_DATA_MODE", "stream")
    dataset._last_listing = None
    setup(runtime)
    assert {Path(t).parent for t in linked(runtime).values()} == {runtime.dataset_dir}


def test_stage_short_of_disk_is_one_error_and_fetches_nothing(
    runtime, moto, s3_dataset, monkeypatch
):
    short_of_disk(runtime, monkeypatch)
    monkeypatch.setenv("TRAINKIT_DATA_MODE", "stage")
    before = len(moto.requests_seen())
    with pytest.raises(DatasetError) as err:
        setup(runtime)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("cannot stage dataset 1: 12 files (")
    assert "TRAINKIT_STAGE_RESERVE_MB" in message and "TRAINKIT_DATA_MODE=stream" in message
    assert image_requests(moto, "GET", before) == []


def test_auto_streams_when_the_dataset_does_not_fit(runtime, moto, s3_dataset, monkeypatch, caplog):
    short_of_disk(runtime, monkeypatch)
    before = len(moto.requests_seen())
    with caplog.at_level("INFO", logger="staging"):
        setup(runtime)
    assert "data mode stream (TRAINKIT_DATA_MODE=auto: does not fit" in caplog.text
    assert image_requests(moto, "GET", before) == []
    assert {Path(t).parent for t in linked(runtime).values()} == {runtime.dataset_dir}


def test_staged_copies_of_another_dataset_are_removed(runtime, moto, s3_dataset):
    other = runtime.datasets / "staged" / "7"
    other.mkdir(parents=True)
    (other / staging.MARKER).touch()
    (other / "old.png").write_bytes(b"x")
    foreign = runtime.datasets / "staged" / "mine"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("not staging's")
    setup(runtime)
    assert not other.exists()
    assert (foreign / "keep.txt").exists()


def test_stage_dir_setting_and_bad_numbers(runtime, moto, s3_dataset, monkeypatch, tmp_path):
    monkeypatch.setenv("TRAINKIT_STAGE_DIR", str(tmp_path / "elsewhere"))
    setup(runtime)
    assert {Path(t).parent for t in linked(runtime).values()} == {tmp_path / "elsewhere" / "1"}
    monkeypatch.setenv("TRAINKIT_STAGE_WORKERS", "0")
    (tmp_path / "elsewhere" / "1" / s3_dataset[0]).unlink()
    dataset._last_listing = None
    with pytest.raises(DatasetError, match=r"TRAINKIT_STAGE_WORKERS='0' .* from 1 to 256"):
        setup(runtime)


def test_stage_onto_the_mount_is_refused(runtime, moto, s3_dataset, monkeypatch):
    monkeypatch.setenv("TRAINKIT_STAGE_DIR", str(runtime.minio / "staged"))
    monkeypatch.setenv("TRAINKIT_DATA_MODE", "stage")
    with pytest.raises(DatasetError, match="is on an s3fs mount"):
        setup(runtime)


def test_a_failed_get_is_one_error_naming_the_object(runtime, moto, s3_dataset):
    cd = runtime.cvat
    _, _, train, _ = cd.get_cvat_dataset()  # lists the bucket
    cd.create_directory_structure()
    gone = sorted(p.name for p in train)[3]
    _client(moto).delete_object(Bucket=BUCKET, Key=f"datasets/1/{gone}")  # after the listing
    with pytest.raises(DatasetError) as err:
        cd.create_train_images(train)
    assert str(err.value).startswith(f"staging s3://{BUCKET}/datasets/1/{gone} to ")
    assert "NoSuchKey" in str(err.value)
    assert not list((runtime.datasets / "staged" / "1").glob(".*.part"))


def test_a_symlinked_stage_dir_is_refused(runtime, moto, s3_dataset, tmp_path):
    (runtime.datasets / "staged").mkdir()
    (runtime.datasets / "staged" / "1").symlink_to(tmp_path)
    with pytest.raises(DatasetError, match="is a symlink; refusing to write through it"):
        setup(runtime)
