"""Where the mounted dataset lives and which files it holds (the platform's `dataset` API).

Part of the runtime package (the flat name `dataset` is an alias of it in trainkit's images);
standard library + boto3 (optional) only.

Roots come from the environment at import time (defaults = the platform's paths):
`MINIO_ROOT` (default `/minio`; datasets under `$MINIO_ROOT/datasets/<DATASET_ID>/`) and
`DATASETS_ROOT` (default `/datasets`; setup writes `images/` and `labels/` there).

`load_dataset_filepaths()` takes the file list from S3 `ListObjectsV2` (one request per 1,000
keys) when the dataset folder is an s3fs mount and credentials are at hand; a directory listing
through s3fs costs one HEAD request per object. Otherwise it lists the folder with one scandir.
The listing is kept (`last_listing()`, with each object's size and time when it came from S3),
so staging (`staging.py`) copies the images without listing the bucket again.
"""

# os.* path calls on purpose: str constants like the platform's, one syscall each.
# ruff: noqa: PTH118, PTH123

from __future__ import annotations

import configparser
import logging
import os
import re
import sys
from array import array
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

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
    return [dataset_path / name for name in list_dataset_names(dataset_path)]


def list_dataset_names(dataset_path: Path) -> list[str]:
    """The names `list_dataset_dir` lists, sorted."""
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
    return names


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


@dataclass(frozen=True)
class S3Location:
    """Where a dataset's objects are: `s3://bucket/prefix<name>` at `endpoint_url`."""

    bucket: str
    prefix: str
    endpoint_url: str
    credentials: dict[str, str | None] = field(repr=False)  # never printed
    verify: bool = True

    def client(self, max_pool_connections: int = 10) -> Any:
        """A boto3 S3 client (thread-safe: one for all staging workers)."""
        import boto3  # optional: only the S3 path needs it
        from botocore.config import Config

        creds = self.credentials
        return boto3.session.Session(
            aws_access_key_id=creds["aws_access_key_id"],
            aws_secret_access_key=creds["aws_secret_access_key"],
            aws_session_token=creds.get("aws_session_token"),
        ).client(
            "s3",
            endpoint_url=self.endpoint_url,
            verify=self.verify,
            region_name=os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
            config=Config(
                s3={"addressing_style": "path"},
                retries={"max_attempts": 3},
                max_pool_connections=max_pool_connections,
            ),
        )


@dataclass
class DatasetListing:
    """One listing of a dataset folder: sample file names (sorted) in `root`; from S3 also
    each object's size in bytes and modification time in s (arrays parallel to `names`, so a
    1M-object listing costs 16 bytes an object beyond its name) and where to fetch it."""

    root: Path
    names: list[str]
    sizes: array | None = None
    mtimes: array | None = None
    s3: S3Location | None = None

    def paths(self) -> list[Path]:
        root = self.root
        return [root / name for name in self.names]

    def objects(self) -> dict[str, tuple[int, float]]:
        """{name: (size, mtime)} of an S3 listing ({} otherwise), built on each call."""
        if self.sizes is None or self.mtimes is None:
            return {}
        return {n: (s, m) for n, s, m in zip(self.names, self.sizes, self.mtimes, strict=True)}


_last_listing: DatasetListing | None = None


def last_listing() -> DatasetListing | None:
    """The listing `load_dataset_filepaths()` made last in this process (None before)."""
    return _last_listing


def list_s3_objects(location: S3Location) -> tuple[list[str], array, array]:
    """(names, sizes, mtimes) of the sample objects directly below `location.prefix`, sorted
    by name (ListObjectsV2, Delimiter '/', 1,000 keys a page); hidden names and sub-folders
    such as `annotations/` are skipped."""
    paginator = location.client().get_paginator("list_objects_v2")
    prefix = location.prefix
    cut = len(prefix)
    names: list[str] = []
    sizes, mtimes = array("q"), array("d")
    pages = paginator.paginate(
        Bucket=location.bucket,
        Prefix=prefix,
        Delimiter="/",
        PaginationConfig={"PageSize": S3_PAGE_SIZE},
    )
    for page in pages:
        for obj in page.get("Contents", ()):
            name = obj["Key"][cut:]
            if _is_sample_name(name) and "/" not in name:
                names.append(name)
                sizes.append(obj["Size"])
                mtimes.append(obj["LastModified"].timestamp())
    if any(a > b for a, b in pairwise(names)):  # S3 lists in UTF-8 byte (= str) order
        order = sorted(range(len(names)), key=names.__getitem__)
        names = [names[i] for i in order]
        sizes, mtimes = (
            array("q", (sizes[i] for i in order)),
            array("d", (mtimes[i] for i in order)),
        )
    return names, sizes, mtimes


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
    location = S3Location(bucket, f"datasets/{dataset_id}/", endpoint_url, credentials, verify)
    root = Path(datasets_root or MOUNTED_DATASETS_ROOT_PATH, dataset_id)
    return [root / name for name in list_s3_objects(location)[0]]


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


def load_dataset_listing() -> DatasetListing:
    """List the dataset's sample files (S3 ListObjectsV2 on an s3fs mount, else one scandir)
    and keep the listing for `last_listing()`."""
    global _last_listing
    dataset_path = get_dataset_path()
    settings = _s3_listing_settings(dataset_path.name)
    listing = None
    if settings is not None:
        location = S3Location(
            settings["bucket"],
            f"datasets/{settings['dataset_id']}/",
            settings["endpoint_url"],
            settings["credentials"],
            settings["verify"],
        )
        try:
            names, sizes, mtimes = list_s3_objects(location)
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
            log.info("listed %d files of dataset %s via S3", len(names), settings["dataset_id"])
            listing = DatasetListing(dataset_path, names, sizes, mtimes, location)
    if listing is None:
        listing = DatasetListing(dataset_path, list_dataset_names(dataset_path))
    _last_listing = listing
    return listing


def load_dataset_filepaths() -> list[Path]:
    """The dataset's sample files (flat folder, `annotations/` and hidden files excluded)."""
    return load_dataset_listing().paths()
