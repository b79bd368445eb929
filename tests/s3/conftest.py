"""Fixtures for the S3 tests: a moto bucket, the environment mount-s3.sh and the entrypoint
read, and a guard that always unmounts what a test mounted (and stops its s3fs)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import pytest

from tests.support.s3 import mounted_fstype, mounts_below, s3fs_pids, unmount
from tests.support.services import MotoServer
from trainkit import vendor

__all__ = ["mounted_fstype", "s3fs_pids"]

REPO = Path(__file__).resolve().parents[2]
# The installed runtime package holds mount-s3.sh, docker-entrypoint.sh and s3_credentials.py.
RUNTIME = vendor.RUNTIME_DIR
BUCKET = "platform-datasets"
ROLE_ARN = "arn:aws:iam::123456789012:role/dataset-reader"


@dataclass
class S3Setup:
    """A moto bucket plus the environment for mount-s3.sh / docker-entrypoint.sh."""

    moto: MotoServer
    root: Path
    env: dict[str, str]
    token: str
    mounts: list[Path] = field(default_factory=list)

    @property
    def minio_root(self) -> Path:
        return Path(self.env["MINIO_ROOT"])

    @property
    def credentials_file(self) -> Path:
        return Path(self.env["AWS_SHARED_CREDENTIALS_FILE"])

    def client(self):
        return boto3.client(
            "s3",
            endpoint_url=self.moto.url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def upload_tree(self, local_root: Path) -> int:
        """Upload every file below `local_root` with its relative path as key."""
        client = self.client()
        count = 0
        for path in sorted(local_root.rglob("*")):
            if path.is_file():
                client.upload_file(str(path), BUCKET, path.relative_to(local_root).as_posix())
                count += 1
        return count

    def mount_script(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        """Run the runtime's mount-s3.sh; whatever it mounts is unmounted after the test."""
        run_env = {**self.env, **env}
        self.mounts.append(Path(run_env.get("MINIO_ROOT", "/minio")))
        if "-m" in args:
            self.mounts.append(Path(args[args.index("-m") + 1]))
        return subprocess.run(
            ["bash", str(RUNTIME / "mount-s3.sh"), *args],
            env=run_env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


def base_env(tmp_path: Path) -> dict[str, str]:
    """os.environ without AWS/S3 settings of the machine, with every root inside tmp_path."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "S3_", "S3FS_", "OID_", "DATASET"))
        and key not in {"MINIO_ROOT", "OUTPUT_DIR"}
    }
    env.update(
        # The entrypoint's and mount-s3.sh's interpreter: this environment's, as `trainkit run`
        # sets it (bare `python` from PATH may be another environment's, or none).
        PYTHON=sys.executable,
        HOME=str(tmp_path / "home"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "home" / ".aws" / "credentials"),
        MINIO_ROOT=str(tmp_path / "minio"),
        DATASETS_ROOT=str(tmp_path / "datasets"),
        OUTPUT_DIR=str(tmp_path / "output"),
        S3FS_CACHE_DIR=str(tmp_path / "s3fs"),
        S3FS_ENSURE_DISKFREE="10",
        TMPDIR=str(tmp_path),
    )
    if ca_bundle := os.environ.get("AWS_CA_BUNDLE"):
        env["AWS_CA_BUNDLE"] = ca_bundle
    return env


@pytest.fixture
def s3(moto: MotoServer, tmp_path: Path) -> Iterator[S3Setup]:
    """An empty bucket on a fresh moto server and the environment to mount it; unmounts
    everything mount_script() may have mounted, also when the test failed."""
    token = f"oidc-secret-{uuid.uuid4().hex}"
    env = base_env(tmp_path)
    env.update(
        S3_HOST=moto.url,
        S3_BUCKET_NAME=BUCKET,
        OID_ACCESS_TOKEN=token,
        S3_ROLE_ARN=ROLE_ARN,
    )
    setup = S3Setup(moto=moto, root=tmp_path, env=env, token=token)
    setup.client().create_bucket(Bucket=BUCKET)
    try:
        yield setup
    finally:
        for mountpoint in {*setup.mounts, setup.minio_root, *mounts_below(tmp_path)}:
            unmount(mountpoint)


def write_small_cvat_dataset(root: Path, dataset_id: str, labels: list[str], per_label: int):
    """A tiny CVAT-for-images classification export: `<tag>` per image; returns
    {image name: label}."""
    dataset = root / "datasets" / dataset_id
    (dataset / "annotations").mkdir(parents=True)
    truth: dict[str, str] = {}
    lines = [
        '<?xml version="1.0" encoding="utf-8"?>',
        "<annotations><version>1.1</version><meta><task><labels>",
        *(f"<label><name>{label}</name></label>" for label in labels),
        "</labels></task></meta>",
    ]
    for label in labels:
        for index in range(per_label):
            name = f"{label}_{index:03d}.png"
            (dataset / name).write_bytes(f"image {name}".encode())
            truth[name] = label
            lines.append(f'<image id="{len(truth)}" name="{name}" width="8" height="8">')
            lines.append(f'<tag label="{label}" source="manual"/></image>')
    lines.append("</annotations>")
    (dataset / "annotations" / "annotations.xml").write_text("\n".join(lines))
    return truth
