"""trainkit_runtime/dataset.py: env roots, DATASET_ID validation, filesystem and S3 listing."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import boto3
import pytest

from tests.support.services import free_port
from trainkit_runtime import dataset


def test_roots_come_from_env_at_import(tmp_path):
    code = (
        "from trainkit_runtime import dataset; print(dataset.MOUNTED_DATASETS_ROOT_PATH); "
        "print(dataset.DATASETS_ROOT_PATH); print(type(dataset.DATASETS_ROOT_PATH).__name__)"
    )
    env = {**os.environ, "MINIO_ROOT": str(tmp_path / "m"), "DATASETS_ROOT": str(tmp_path / "d")}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    ).stdout.split()
    assert out == [str(tmp_path / "m" / "datasets"), str(tmp_path / "d"), "str"]
    env = {k: v for k, v in os.environ.items() if k not in {"MINIO_ROOT", "DATASETS_ROOT"}}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    ).stdout.split()
    assert out == ["/minio/datasets", "/datasets", "str"]


def test_get_dataset_path(runtime):
    runtime.dataset_dir.mkdir(parents=True)
    assert dataset.get_dataset_path() == runtime.dataset_dir


@pytest.mark.parametrize("value", [None, "", "  "])
def test_missing_dataset_id(runtime, monkeypatch, value):
    if value is None:
        monkeypatch.delenv("DATASET_ID")
    else:
        monkeypatch.setenv("DATASET_ID", value)
    with pytest.raises(dataset.DatasetError, match="DATASET_ID is not set"):
        dataset.get_dataset_path()


@pytest.mark.parametrize("value", ["../x", "/abs", "a/b", "..", ".", ".hidden", "1\n", "a\\b"])
def test_dataset_id_traversal_is_refused(runtime, monkeypatch, value):
    (runtime.minio / "x").mkdir()
    monkeypatch.setenv("DATASET_ID", value)
    with pytest.raises(dataset.DatasetError, match="not a plain directory name") as err:
        dataset.get_dataset_path()
    assert repr(value) in str(err.value)


def test_missing_dataset_dir_names_the_path(runtime, monkeypatch):
    monkeypatch.setenv("DATASET_ID", "42")
    with pytest.raises(dataset.DatasetError, match="not found") as err:
        dataset.get_dataset_path()
    assert str(runtime.minio / "datasets" / "42") in str(err.value)


def test_filesystem_listing_skips_annotations_hidden_and_dirs(runtime):
    runtime.add_files("b.jpg", "a.png", "with space.jpg", "ünï.jpg", ".hidden.jpg", "noext")
    (runtime.dataset_dir / "annotations").mkdir()
    (runtime.dataset_dir / "annotations" / "annotations.xml").write_text("<annotations/>")
    (runtime.dataset_dir / "subdir").mkdir()
    names = [p.name for p in dataset.load_dataset_filepaths()]
    assert names == sorted(["a.png", "b.jpg", "noext", "with space.jpg", "ünï.jpg"])
    assert all(p.parent == runtime.dataset_dir for p in dataset.load_dataset_filepaths())


def test_s3fs_mount_detection(tmp_path):
    mounts = tmp_path / "mounts"
    mounts.write_text(
        "/dev/vda / ext4 rw 0 0\n"
        f"s3fs {tmp_path}/minio fuse.s3fs rw,nosuid 0 0\n"
        f"tmpfs {tmp_path}/minio/datasets/cache tmpfs rw 0 0\n"
        f"s3fs {tmp_path}/with\\040space fuse.s3fs rw 0 0\n"
    )
    (tmp_path / "minio" / "datasets" / "cache").mkdir(parents=True)
    (tmp_path / "with space").mkdir()
    find = dataset.s3fs_mount_point
    assert find(str(tmp_path / "minio" / "datasets"), str(mounts)) == str(tmp_path / "minio")
    assert find(str(tmp_path / "minio" / "datasets" / "cache"), str(mounts)) is None
    assert find(str(tmp_path / "with space"), str(mounts)) == str(tmp_path / "with space")
    assert find(str(tmp_path), str(mounts)) is None
    assert find("/", str(tmp_path / "no-such-file")) is None


def test_read_profile_credentials(tmp_path, monkeypatch):
    creds = tmp_path / "credentials"
    creds.write_text(
        "[default]\naws_access_key_id=x\naws_secret_access_key=y\n"
        "[dataset]\naws_access_key_id=AK\naws_secret_access_key=S%K\naws_session_token=T\n"
    )
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds))
    assert dataset.read_profile_credentials() == {
        "aws_access_key_id": "AK",
        "aws_secret_access_key": "S%K",
        "aws_session_token": "T",
    }
    assert dataset.read_profile_credentials("other") is None
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "missing"))
    assert dataset.read_profile_credentials() is None


def _bucket(moto, keys: list[str]) -> None:
    s3 = boto3.client(
        "s3",
        endpoint_url=moto.url,
        aws_access_key_id="k",
        aws_secret_access_key="s",
        region_name="us-east-1",
    )
    s3.create_bucket(Bucket="bucket")
    for key in keys:
        s3.put_object(Bucket="bucket", Key=key, Body=b"")


def test_s3_listing_pages_and_skips_non_samples(moto, tmp_path, monkeypatch):
    assert dataset.S3_PAGE_SIZE == 1000  # the S3 maximum: one request per 1,000 keys
    monkeypatch.setattr(dataset, "S3_PAGE_SIZE", 10)  # same paging, 100x fewer PUTs to set up
    keys = [f"datasets/7/img_{i:05d}.jpg" for i in range(25)]
    extra = [
        "datasets/7/annotations/annotations.xml",
        "datasets/7/.hidden",
        "datasets/7/sub/deeper.jpg",
        "datasets/70/other.jpg",
        "datasets/7/with space ü.jpg",
    ]
    _bucket(moto, keys + extra)
    before = len([r for r in moto.requests_seen() if "list-type=2" in r])
    paths = dataset.list_dataset_objects_s3(
        bucket="bucket",
        dataset_id="7",
        endpoint_url=moto.url,
        credentials={"aws_access_key_id": "k", "aws_secret_access_key": "s"},
        datasets_root=str(tmp_path / "minio" / "datasets"),
    )
    names = [p.name for p in paths]
    assert len(paths) == 26
    assert "with space ü.jpg" in names
    assert not {"annotations.xml", ".hidden", "deeper.jpg", "other.jpg"} & set(names)
    assert paths[0] == tmp_path / "minio" / "datasets" / "7" / "img_00000.jpg"
    lists = [r for r in moto.requests_seen() if "list-type=2" in r]
    assert len(lists) - before == 3  # 26 keys (+ 1 common prefix), 10 a page
    assert all("max-keys=10" in r for r in lists[before:])


def _s3_env(runtime, monkeypatch, tmp_path, url: str) -> None:
    creds = tmp_path / "credentials"
    creds.write_text("[dataset]\naws_access_key_id=k\naws_secret_access_key=s\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds))
    monkeypatch.setenv("S3_HOST", url)
    monkeypatch.setenv("S3_BUCKET_NAME", "bucket")
    # Pretend $MINIO_ROOT is an s3fs mount (the real mount is the s3-mount integration test).
    monkeypatch.setattr(dataset, "s3fs_mount_point", lambda path: str(runtime.minio))


def test_load_dataset_filepaths_uses_s3_on_an_s3fs_mount(runtime, moto, tmp_path, monkeypatch):
    _bucket(moto, ["datasets/1/s3-only.jpg", "datasets/1/annotations/annotations.xml"])
    runtime.add_files("local-only.jpg")
    _s3_env(runtime, monkeypatch, tmp_path, moto.url)
    assert [p.name for p in dataset.load_dataset_filepaths()] == ["s3-only.jpg"]


def test_s3_failure_falls_back_to_filesystem(runtime, tmp_path, monkeypatch, caplog):
    runtime.add_files("local-only.jpg")
    _s3_env(runtime, monkeypatch, tmp_path, f"http://127.0.0.1:{free_port()}")
    with caplog.at_level(logging.WARNING, logger="dataset"):
        paths = dataset.load_dataset_filepaths()
    assert [p.name for p in paths] == ["local-only.jpg"]
    assert "S3 listing of s3://bucket/datasets/1/ failed" in caplog.text


def test_missing_boto3_falls_back_to_filesystem(runtime, tmp_path, monkeypatch, caplog):
    runtime.add_files("local-only.jpg")
    _s3_env(runtime, monkeypatch, tmp_path, "http://127.0.0.1:9")
    monkeypatch.setitem(sys.modules, "boto3", None)
    with caplog.at_level(logging.WARNING, logger="dataset"):
        paths = dataset.load_dataset_filepaths()
    assert [p.name for p in paths] == ["local-only.jpg"]
    assert "boto3 is not installed" in caplog.text


def test_no_s3_settings_lists_filesystem_without_warning(runtime, caplog):
    runtime.add_files("a.jpg")
    with caplog.at_level(logging.WARNING):
        assert [p.name for p in dataset.load_dataset_filepaths()] == ["a.jpg"]
    assert caplog.text == ""


def test_s3_settings_require_mount_and_credentials(runtime, tmp_path, monkeypatch):
    monkeypatch.setenv("S3_HOST", "minio:9000")
    monkeypatch.setenv("S3_BUCKET_NAME", "bucket")
    # not an s3fs mount
    assert dataset._s3_listing_settings("1") is None
    monkeypatch.setattr(dataset, "s3fs_mount_point", lambda path: str(runtime.minio))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    assert dataset._s3_listing_settings("1") is None
    creds = tmp_path / "c"
    creds.write_text("[dataset]\naws_access_key_id=k\naws_secret_access_key=s\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds))
    settings = dataset._s3_listing_settings("1")
    assert settings["endpoint_url"] == "https://minio:9000"
    assert settings["verify"] is True
    monkeypatch.setenv("S3_INSECURE", "true")
    assert dataset._s3_listing_settings("1")["verify"] is False


def test_dataset_error_prints_one_line_without_traceback(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DATASET_ID"}
    env["MINIO_ROOT"] = str(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-c", "from trainkit_runtime import dataset; dataset.get_dataset_path()"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    assert len(proc.stderr.splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith("dataset error: DATASET_ID is not set")
    assert "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written for the refused input
