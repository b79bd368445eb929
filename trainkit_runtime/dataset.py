"""Where the mounted dataset lives and which files it holds (the platform's `dataset` API).

Part of the runtime package (the flat name `dataset` is an alias of it in trainkit's images);
standard library + boto3 (optional) only.

Roots come from the environment at import time (defaults = the platform's paths):
`MINIO_ROOT` (default `/minio`; datasets under `$MINIO_ROOT/datasets/<DATASET_ID>/`) and
`DATASETS_ROOT` (default `/datasets`; setup writes `images/` and `labels/` there).

`load_dataset_filepaths()` takes the file list from S3 `ListObjectsV2` (one request per 1,000
keys) when the dataset folder is an s3fs mount and credentials are at hand; a directory listing
through s3fs costs one HEAD request per object. Otherwise it lists the folder with one scandir.
"""

# os.* path calls on purpose: str constants like the platform's, one syscall each.
# ruff: noqa: PTH118, PTH123

from __future__ import annotations

import configparser
import logging
import os
import re
import sys
from pathlib import Path

from trainkit_runtime.values import ValueRefused, check_dataset_id

log = logging.getLogger("dataset")

MINIO_ROOT_PATH: str = os.environ.get("MINIO_ROOT") or "/minio"
MOUNTED_DATASETS_ROOT_PATH: str = os.path.join(MINIO_ROOT_PATH, "datasets")
DATASETS_ROOT_PATH: str = os.environ.get("DATASETS_ROOT") or "/datasets"

# Filled by cvat_dataset.create_directory_structure():
# images_train, images_val, labels_train, labels_val -> Path
DATA_DIRS: dict[str, Path] = {}

ANNOTATIONS_DIRNAME = "annotations"
S3_PROFILE = "dataset"
S3_PAGE_SIZE = 1000


class DatasetError(Exception):
    """The dataset cannot be used as it is; the message names the file and offending value."""


def _excepthook(exc_type, exc, tb, _previous=sys.excepthook):
    """An uncaught DatasetError (e.g. in the platform's unchanged setup.py) prints one line,
    not a traceback; Python still exits with status 1. Other exceptions are untouched."""
    if isinstance(exc, DatasetError):
        print(f"dataset error: {exc}", file=sys.stderr, flush=True)
    else:
        _previous(exc_type, exc, tb)


if sys.excepthook is sys.__excepthook__:
    sys.excepthook = _excepthook


def get_dataset_id() -> str:
    """The validated `DATASET_ID`: one plain path component (no traversal, no absolute path)."""
    dataset_id = os.environ.get("DATASET_ID")
    if dataset_id is None or not dataset_id.strip():
        raise DatasetError(
            "DATASET_ID is not set: the platform passes it with `-e DATASET_ID=<id>` "
            f"(datasets live under {MOUNTED_DATASETS_ROOT_PATH}/<id>/)"
        )
    try:
        return check_dataset_id(dataset_id)
    except ValueRefused as exc:
        raise DatasetError(str(exc)) from None


def get_dataset_path() -> Path:
    """`$MINIO_ROOT/datasets/$DATASET_ID` as a Path; DatasetError when it is not a directory."""
    dataset_path = Path(MOUNTED_DATASETS_ROOT_PATH, get_dataset_id())
    if not dataset_path.is_dir():
        raise DatasetError(
            f"dataset directory '{dataset_path}' not found "
            f"(DATASET_ID={os.environ.get('DATASET_ID')!r}, MINIO_ROOT={MINIO_ROOT_PATH!r})"
        )
    return dataset_path


def _is_sample_name(name: str) -> bool:
    return bool(name) and not name.startswith(".")


def list_dataset_dir(dataset_path: Path) -> list[Path]:
    """Sample files of a flat dataset folder: one scandir, regular files (or links to them),
    hidden files and sub-directories (`annotations/`) skipped; sorted by name."""
    names = []
    try:
        with os.scandir(dataset_path) as entries:
            for entry in entries:
                name = entry.name
                if name.startswith(".") or name == ANNOTATIONS_DIRNAME:
                    continue
                try:
                    if entry.is_file():
                        names.append(name)
                except OSError:
                    continue
    except OSError as exc:
        raise DatasetError(f"cannot list dataset directory '{dataset_path}': {exc}") from exc
    names.sort()
    return [dataset_path / name for name in names]


# --- S3 listing -----------------------------------------------------------------------------


def _unescape_mount_field(field: str) -> str:
    # /proc/self/mounts escapes space, tab, newline and backslash as octal.
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def s3fs_mount_point(path: str, mounts_file: str = "/proc/self/mounts") -> str | None:
    """The s3fs mount point that holds `path` (the deepest one), or None."""
    try:
        real = os.path.realpath(path)
        with open(mounts_file, encoding="utf-8", errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None
    best = None
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        mount_point, fstype = _unescape_mount_field(fields[1]), fields[2]
        inside = real == mount_point or real.startswith(mount_point.rstrip("/") + "/")
        if inside and (best is None or len(mount_point) > len(best[0])):
            best = (mount_point, fstype)
    if best and best[1] == "fuse.s3fs":
        return best[0]
    return None


def _credentials_file() -> Path:
    configured = os.environ.get("AWS_SHARED_CREDENTIALS_FILE")
    return Path(configured) if configured else Path.home() / ".aws" / "credentials"


def read_profile_credentials(
    profile: str = S3_PROFILE, path: Path | None = None
) -> dict[str, str] | None:
    """Keys of `profile` from the AWS shared credentials file, or None when not readable."""
    path = path or _credentials_file()
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with open(path, encoding="utf-8") as fh:
            parser.read_file(fh)
    except (OSError, configparser.Error):
        return None
    if not parser.has_section(profile):
        return None
    section = parser[profile]
    if not section.get("aws_access_key_id") or not section.get("aws_secret_access_key"):
        return None
    return {
        "aws_access_key_id": section["aws_access_key_id"],
        "aws_secret_access_key": section["aws_secret_access_key"],
        "aws_session_token": section.get("aws_session_token") or None,
    }


def _endpoint_url(host: str) -> str:
    return host if "://" in host else f"https://{host}"


def _verify_tls() -> bool:
    return os.environ.get("S3_INSECURE", "").strip().lower() not in {"1", "true", "yes", "on"}


def list_dataset_objects_s3(
    bucket: str,
    dataset_id: str,
    endpoint_url: str,
    credentials: dict[str, str | None],
    datasets_root: str | None = None,
    verify: bool = True,
) -> list[Path]:
    """Sample files of `datasets/<id>/` via ListObjectsV2 (Delimiter '/', 1,000 keys a page).

    Keys map to `<datasets_root>/<id>/<name>` (default MOUNTED_DATASETS_ROOT_PATH, which is
    where s3fs shows `$MINIO_ROOT/<key>`). Hidden names and `annotations/` are skipped."""
    import boto3  # optional: only the S3 path needs it
    from botocore.config import Config

    root = Path(datasets_root or MOUNTED_DATASETS_ROOT_PATH, dataset_id)
    prefix = f"datasets/{dataset_id}/"
    client = boto3.session.Session(
        aws_access_key_id=credentials["aws_access_key_id"],
        aws_secret_access_key=credentials["aws_secret_access_key"],
        aws_session_token=credentials.get("aws_session_token"),
    ).client(
        "s3",
        endpoint_url=endpoint_url,
        verify=verify,
        region_name=os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
    )
    paginator = client.get_paginator("list_objects_v2")
    names = []
    pages = paginator.paginate(
        Bucket=bucket,
        Prefix=prefix,
        Delimiter="/",
        PaginationConfig={"PageSize": S3_PAGE_SIZE},
    )
    for page in pages:
        for obj in page.get("Contents", ()):
            name = obj["Key"][len(prefix) :]
            if _is_sample_name(name) and "/" not in name:
                names.append(name)
    names.sort()
    return [root / name for name in names]


def _s3_listing_settings(dataset_id: str) -> dict | None:
    """Everything the S3 listing needs, or None (with a debug reason) to list the filesystem."""
    host, bucket = os.environ.get("S3_HOST"), os.environ.get("S3_BUCKET_NAME")
    if not host or not bucket:
        log.debug("S3_HOST/S3_BUCKET_NAME not set: listing the dataset folder")
        return None
    mount = s3fs_mount_point(MOUNTED_DATASETS_ROOT_PATH)
    if mount is None or os.path.realpath(mount) != os.path.realpath(MINIO_ROOT_PATH):
        log.debug("%s is not an s3fs mount: listing the dataset folder", MINIO_ROOT_PATH)
        return None
    credentials = read_profile_credentials()
    if credentials is None:
        log.warning(
            "no readable profile [%s] in %s: listing through s3fs (one request per file)",
            S3_PROFILE,
            _credentials_file(),
        )
        return None
    return {
        "bucket": bucket,
        "dataset_id": dataset_id,
        "endpoint_url": _endpoint_url(host),
        "credentials": credentials,
        "verify": _verify_tls(),
    }


def load_dataset_filepaths() -> list[Path]:
    """The dataset's sample files (flat folder, `annotations/` and hidden files excluded)."""
    dataset_path = get_dataset_path()
    settings = _s3_listing_settings(dataset_path.name)
    if settings is not None:
        try:
            paths = list_dataset_objects_s3(**settings)
        except ImportError:
            log.warning("boto3 is not installed: listing through s3fs (one request per file)")
        except Exception as exc:  # any S3/network failure: the mount still works
            log.warning(
                "S3 listing of s3://%s/datasets/%s/ failed (%s: %s): listing through s3fs",
                settings["bucket"],
                settings["dataset_id"],
                type(exc).__name__,
                exc,
            )
        else:
            log.info("listed %d files of dataset %s via S3", len(paths), settings["dataset_id"])
            return paths
    return list_dataset_dir(dataset_path)
