"""The runtime's mount-s3.sh for real: STS against moto, an s3fs mount into tmp_path, unmounted by
the `s3` fixture whatever happens."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from tests.s3.conftest import BUCKET, S3Setup, mounted_fstype, s3fs_pids
from trainkit_runtime import s3_credentials as sc

pytestmark = pytest.mark.s3fs


def _proc_texts(pid: int) -> tuple[bytes, bytes]:
    proc = Path(f"/proc/{pid}")
    return (proc / "cmdline").read_bytes(), (proc / "environ").read_bytes()


def test_mount_reads_the_bucket_and_keeps_the_token_off_argv(s3: S3Setup, tmp_path: Path):
    source = tmp_path / "upload"
    (source / "datasets" / "1" / "annotations").mkdir(parents=True)
    (source / "datasets" / "1" / "a b ü.png").write_bytes(b"\x89PNG first")
    (source / "datasets" / "1" / "annotations" / "annotations.xml").write_text("<annotations/>")
    s3.upload_tree(source)

    result = s3.mount_script()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "S3 access expires on 20" in result.stdout
    assert f"Mounted bucket '{BUCKET}'" in result.stdout
    assert mounted_fstype(s3.minio_root) == "fuse.s3fs"

    dataset = s3.minio_root / "datasets" / "1"
    assert (dataset / "a b ü.png").read_bytes() == b"\x89PNG first"
    assert (dataset / "annotations" / "annotations.xml").read_text() == "<annotations/>"

    # The OIDC token is on no command line and in no environment of a running process,
    # nor in the output, the s3fs log or the credentials file.
    token = s3.token.encode()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            assert token not in cmdline, f"token visible in argv of pid {proc.name}"
    pids = s3fs_pids(s3.minio_root)
    assert len(pids) == 1
    cmdline, environ = _proc_texts(pids[0])
    assert b"use_path_request_style" in cmdline
    assert f"use_cache={s3.root / 's3fs' / 'cache'}".encode() in cmdline
    assert token not in environ  # s3fs gets the temporary keys, not the OIDC token
    credentials = sc.read_profile(s3.credentials_file)
    assert f"AWS_SESSION_TOKEN={credentials.session_token}".encode() in environ
    assert credentials.secret_access_key.encode() not in cmdline
    assert s3.token not in result.stdout + result.stderr
    assert s3.token not in s3.credentials_file.read_text()
    assert s3.token not in (s3.root / "s3fs" / "s3fs.log").read_text()
    assert stat.S_IMODE(s3.credentials_file.stat().st_mode) == 0o600

    # Running it again (docker start of the same container) keeps the mount.
    again = s3.mount_script()
    assert again.returncode == 0, again.stderr
    assert "already an s3fs mount" in again.stdout
    assert s3fs_pids(s3.minio_root) == pids


def test_platform_options_still_work_and_warn_about_argv(s3: S3Setup, tmp_path: Path):
    env = {k: v for k, v in s3.env.items() if k not in {"S3_HOST", "S3_BUCKET_NAME"}}
    token = env.pop("OID_ACCESS_TOKEN")
    mountpoint = tmp_path / "elsewhere"
    s3.env = env
    result = s3.mount_script("-t", token, "-s", s3.moto.url, "-b", BUCKET, "-m", str(mountpoint))
    assert result.returncode == 0, result.stderr
    assert "visible in 'ps'" in result.stdout
    assert mounted_fstype(mountpoint) == "fuse.s3fs"


def test_mocked_folder_is_used_without_mounting_or_sts(s3: S3Setup):
    image = s3.minio_root / "datasets" / "1" / "x.png"
    image.parent.mkdir(parents=True)
    image.write_bytes(b"x")
    result = s3.mount_script()
    assert result.returncode == 0, result.stderr
    assert "mocked folder" in result.stdout
    assert mounted_fstype(s3.minio_root) is None
    assert not s3.credentials_file.exists()
    assert not any('"POST / ' in line for line in s3.moto.requests_seen())


def test_missing_bucket_shows_s3fs_reason_and_leaves_no_mount(s3: S3Setup):
    result = s3.mount_script(S3_BUCKET_NAME="no-such-bucket", S3FS_MOUNT_TIMEOUT="20")
    assert result.returncode != 0
    assert "s3fs could not mount bucket 'no-such-bucket'" in result.stderr
    assert "NoSuchBucket" in result.stderr or "bucket or key not found" in result.stderr
    assert mounted_fstype(s3.minio_root) is None
    assert s3.token not in result.stdout + result.stderr


def test_sts_failure_stops_before_s3fs(s3: S3Setup):
    env = dict(s3.env)
    env.pop("S3_ROLE_ARN")  # moto's STS refuses a request without RoleArn
    s3.env = env
    result = s3.mount_script()
    assert result.returncode != 0
    assert "HTTP 500" in result.stderr
    assert "could not get S3 credentials" in result.stderr
    assert mounted_fstype(s3.minio_root) is None
    assert not s3.credentials_file.exists()
    assert s3fs_pids(s3.minio_root) == []


def test_missing_settings_are_named(s3: S3Setup):
    env = {k: v for k, v in s3.env.items() if k not in {"S3_BUCKET_NAME", "OID_ACCESS_TOKEN"}}
    s3.env = env
    result = s3.mount_script()
    assert result.returncode != 0
    assert "not set: S3_BUCKET_NAME OID_ACCESS_TOKEN" in result.stderr
