"""Data modes: copy the dataset's images to local disk (`stage`) or read them through the
S3 mount (`stream`), chosen by `TRAINKIT_DATA_MODE`.

Why: SageMaker's input modes *File* (download the data before training) and *FastFile*
(stream it) exist for the same reason. Through the s3fs mount every epoch goes back to S3:
s3fs 1.90 drops its cached stat of an object on every open (`s3fs_open` calls `DelStat`) and
asks S3 again, so each later epoch still costs at least one HEAD per image, whatever the stat
cache options (measured: benchmarks/bench_s3_epochs.py). A local copy costs one GET per image
once and no S3 request in any epoch after.

`TRAINKIT_DATA_MODE` is read from the environment, else from the WORKDIR's `.env` with the
entrypoint's parser (envfile.py), so it also works on the platform's stock entrypoint, whose
`source .env` does not export new keys:

- `stage`: during setup, the images the split uses are downloaded with parallel GETs (keys and
  sizes from the ListObjectsV2 listing the set-up already made) to
  `$TRAINKIT_STAGE_DIR/<DATASET_ID>/` (default `$DATASETS_ROOT/staged/`), and the split's
  links point at the local copies. Resumable: a file whose size and modification time match
  the object's is complete and not fetched again (a restarted container downloads only what
  is missing; a file being written is a hidden `.part` file, fetched again). Refused
  with one line when the bytes to fetch plus `TRAINKIT_STAGE_RESERVE_MB` (default 1024) do
  not fit on that filesystem.
- `stream`: the links point into the mount (trainkit's behaviour before data modes).
- `auto` (default): `stage` when the whole dataset fits (as above), else `stream`.

A dataset that is not on an s3fs mount (a mocked folder in a local run) is already local:
every mode links to it. `TRAINKIT_STAGE_WORKERS` (default 16) sets the parallel GETs;
`TRAINKIT_STAGE_DIR` is read from the container environment only (a template's `.env` may not
choose where files are written).
Staged copies of another DATASET_ID (a dataset change on the platform) are removed first.
"""

# os.* path calls on purpose: str paths, one syscall each, 100k files.
# ruff: noqa: PTH100, PTH101, PTH105, PTH108, PTH110, PTH117, PTH118

from __future__ import annotations

import concurrent.futures
import itertools
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from trainkit_runtime import dataset as _dataset
from trainkit_runtime.dataset import DatasetError, DatasetListing, S3Location
from trainkit_runtime.envfile import EnvFileError, read_env_file

log = logging.getLogger("staging")

DATA_MODE_VARIABLE = "TRAINKIT_DATA_MODE"
DATA_MODES = ("auto", "stage", "stream")
DEFAULT_DATA_MODE = "auto"
STAGE_DIR_VARIABLE = "TRAINKIT_STAGE_DIR"
STAGE_DIRNAME = "staged"
RESERVE_VARIABLE = "TRAINKIT_STAGE_RESERVE_MB"
DEFAULT_RESERVE_MB = 1024
WORKERS_VARIABLE = "TRAINKIT_STAGE_WORKERS"
DEFAULT_WORKERS = 16
MAX_WORKERS = 256
ENV_FILE = ".env"
# Marks a directory this module made, the only kind it ever removes.
MARKER = ".trainkit-staged"
PART_SUFFIX = ".part"
CHUNK_BYTES = 1 << 20
PROGRESS_MIN_BYTES = 64 * 1024 * 1024
MIN_FREE_INODES = 1000

# --- settings -------------------------------------------------------------------------------


def _setting(name: str, env_file: bool = True) -> tuple[str | None, str]:
    """(value, where it came from): the environment first, then (`env_file`) the WORKDIR's
    `.env`, read by the parser and key allowlist docker-entrypoint.sh uses (envfile.py)."""
    value = os.environ.get(name)
    if value is not None or not env_file:
        return value, "environment"
    try:
        return read_env_file(ENV_FILE).get(name), ENV_FILE
    except EnvFileError as exc:
        raise DatasetError(str(exc)) from None


def configured_mode() -> str:
    """`TRAINKIT_DATA_MODE` (environment, else .env), `auto` when unset or empty."""
    value, where = _setting(DATA_MODE_VARIABLE)
    mode = (value or "").strip().lower() or DEFAULT_DATA_MODE
    if mode not in DATA_MODES:
        raise DatasetError(
            f"{DATA_MODE_VARIABLE}={value!r} (from the {where}) is not one of "
            f"{', '.join(DATA_MODES)}"
        )
    return mode


def _int_setting(name: str, default: int, low: int, high: int) -> int:
    value, where = _setting(name)
    if value is None or not value.strip():
        return default
    try:
        number = int(value.strip())
    except ValueError:
        number = None
    if number is None or not low <= number <= high:
        raise DatasetError(
            f"{name}={value!r} (from the {where}) is not a whole number from {low} to {high}"
        )
    return number


def reserve_bytes() -> int:
    """Bytes staging leaves free on the stage directory's filesystem."""
    return _int_setting(RESERVE_VARIABLE, DEFAULT_RESERVE_MB, 0, 1 << 30) * 1024 * 1024


def stage_root() -> Path:
    """`$TRAINKIT_STAGE_DIR` (the environment only: a template's .env may not move where
    files are written), default `$DATASETS_ROOT/staged`."""
    value, _ = _setting(STAGE_DIR_VARIABLE, env_file=False)
    if value and value.strip():
        return Path(os.path.abspath(value.strip()))
    return Path(os.path.abspath(_dataset.DATASETS_ROOT_PATH), STAGE_DIRNAME)


# --- the plan: which mode, where ------------------------------------------------------------


@dataclass
class Plan:
    """What `link_targets` does for one dataset listing: `mode` is `stage` or `stream`; for
    `stage`, the listed objects and the complete local copies, looked up once."""

    mode: str
    listing: DatasetListing | None
    stage_dir: Path | None = None
    why: str = ""
    objects: dict[str, tuple[int, float]] = field(default_factory=dict, repr=False)
    local: dict[str, tuple[int, int]] = field(default_factory=dict, repr=False)


_plan: Plan | None = None


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def _existing_ancestor(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _block_bytes(size: int, block: int) -> int:
    return max(block, -(-size // block) * block)


@dataclass
class Room:
    """What staging still needs on the stage directory's filesystem and what is there."""

    files: int
    need: int
    free: int
    free_inodes: int | None
    reserve: int

    @property
    def fits(self) -> bool:
        inodes_ok = self.free_inodes is None or self.free_inodes >= self.files + MIN_FREE_INODES
        return inodes_ok and self.need + self.reserve <= self.free

    def describe(self, where: Path) -> str:
        inodes = f", {self.free_inodes} free inodes" if self.free_inodes is not None else ""
        return (
            f"{self.files} files ({_human(self.need)}) to download to {where}, "
            f"{_human(self.free)} free there{inodes}, {_human(self.reserve)} kept free "
            f"({RESERVE_VARIABLE})"
        )


def _room(stage_dir: Path, sizes: Iterable[int]) -> Room:
    st = os.statvfs(_existing_ancestor(stage_dir))
    block = st.f_bsize or 4096
    sizes = list(sizes)
    return Room(
        files=len(sizes),
        need=sum(_block_bytes(s, block) for s in sizes),
        free=st.f_bavail * st.f_frsize,
        free_inodes=st.f_favail if st.f_files else None,
        reserve=reserve_bytes(),
    )


def _local_inventory(stage_dir: Path) -> dict[str, tuple[int, int]]:
    """{name: (size, whole-second mtime)} of the complete files in `stage_dir`; removes the
    `.part` files an interrupted run left."""
    found: dict[str, tuple[int, int]] = {}
    try:
        entries = os.scandir(stage_dir)
    except FileNotFoundError:
        return found
    with entries:
        for entry in entries:
            name = entry.name
            if name.startswith("."):
                if name.endswith(PART_SUFFIX):
                    os.unlink(entry.path)
                continue
            if entry.is_file(follow_symlinks=False):
                st = entry.stat(follow_symlinks=False)
                found[name] = (st.st_size, int(st.st_mtime))
    return found


def _is_complete(local: tuple[int, int] | None, listed: tuple[int, float]) -> bool:
    return local is not None and local[0] == listed[0] and local[1] == int(listed[1])


def _remove_other_datasets(root: Path, keep: str) -> None:
    """Remove staged copies of other datasets (only directories carrying MARKER)."""
    try:
        entries = list(os.scandir(root))
    except FileNotFoundError:
        return
    for entry in entries:
        if entry.name == keep or not entry.is_dir(follow_symlinks=False):
            continue
        if os.path.exists(os.path.join(entry.path, MARKER)):
            log.info("removing the staged copy of dataset %s (%s)", entry.name, entry.path)
            shutil.rmtree(entry.path)


def _prepare_stage_dir(listing: DatasetListing) -> Path:
    root = stage_root()
    stage_dir = root / listing.root.name
    if _dataset.s3fs_mount_point(str(_existing_ancestor(stage_dir))) is not None:
        raise DatasetError(
            f"{STAGE_DIR_VARIABLE}: '{stage_dir}' is on an s3fs mount; staging copies the "
            "dataset to local disk (choose a local directory)"
        )
    for path in (root, stage_dir):
        if path.is_symlink():
            raise DatasetError(f"staging: '{path}' is a symlink; refusing to write through it")
    return stage_dir


def decide(listing: DatasetListing | None, mode: str | None = None) -> Plan:
    """The plan for `listing` under `mode` (default: the configured one). `stage` that does
    not fit is a DatasetError; `auto` then streams."""
    mode = mode or configured_mode()
    if mode == "stream":
        return Plan("stream", listing, why=f"{DATA_MODE_VARIABLE}=stream")
    if listing is None or listing.s3 is None:
        on_mount = listing is not None and _dataset.s3fs_mount_point(str(listing.root))
        if on_mount and mode == "stage":
            raise DatasetError(
                f"{DATA_MODE_VARIABLE}=stage: the dataset on the s3fs mount "
                f"'{listing.root}' was not listed through S3 (needs boto3 and the AWS profile "
                f"[{_dataset.S3_PROFILE}] mount-s3.sh writes), so its objects cannot be fetched"
            )
        why = "not listed through S3" if on_mount else "the dataset folder is local"
        return Plan("stream", listing, why=why)
    stage_dir = _prepare_stage_dir(listing)
    _remove_other_datasets(stage_dir.parent, stage_dir.name)
    local = _local_inventory(stage_dir)
    objects = listing.objects()
    missing = [size for name, (size, mtime) in objects.items()
               if not _is_complete(local.get(name), (size, mtime))]  # fmt: skip
    room = _room(stage_dir, missing)
    if room.fits:
        why = f"{DATA_MODE_VARIABLE}={mode}: fits: {room.describe(stage_dir)}"
        return Plan("stage", listing, stage_dir, why, objects, local)
    if mode == "stage":
        raise DatasetError(
            f"cannot stage dataset {listing.root.name}: {room.describe(stage_dir)}; free disk "
            f"space, lower {RESERVE_VARIABLE}, or set {DATA_MODE_VARIABLE}=stream to read the "
            "images through the S3 mount"
        )
    return Plan(
        "stream",
        listing,
        why=f"{DATA_MODE_VARIABLE}=auto: does not fit: {room.describe(stage_dir)}",
    )


def current_plan() -> Plan:
    """The plan for the listing this process made last, decided once per listing."""
    global _plan
    listing = _dataset.last_listing()
    if _plan is None or _plan.listing is not listing:
        _plan = decide(listing)
        log.info("data mode %s (%s)", _plan.mode, _plan.why)
    return _plan


# --- staging --------------------------------------------------------------------------------


def _download(client, location: S3Location, name: str, stage_dir: Path) -> int:
    """GET one object into a hidden `.part` file in `stage_dir`, set its mtime to the
    object's, rename it to `name` (so a visible name is always a complete file). Returns the
    bytes written."""
    response = client.get_object(Bucket=location.bucket, Key=location.prefix + name)
    fd, part = tempfile.mkstemp(prefix=".", suffix=PART_SUFFIX, dir=stage_dir)
    written = 0
    try:
        with os.fdopen(fd, "wb") as fh:
            for chunk in response["Body"].iter_chunks(CHUNK_BYTES):
                fh.write(chunk)
                written += len(chunk)
        os.chmod(part, 0o644)
        mtime = response["LastModified"].timestamp()
        os.utime(part, (mtime, mtime))
        os.replace(part, os.path.join(stage_dir, name))
    except BaseException:
        if os.path.exists(part):
            os.unlink(part)
        raise
    return written


def _workers() -> int:
    return _int_setting(WORKERS_VARIABLE, DEFAULT_WORKERS, 1, MAX_WORKERS)


def stage(plan: Plan, names: list[str]) -> None:
    """Make `plan.stage_dir` hold a complete copy of each object in `names` (parallel GETs,
    progress in bytes); files already complete (size and mtime of the object) are not fetched
    again."""
    from trainkit_runtime.cvat_dataset import _Progress  # the set-up's progress display

    location, stage_dir = plan.listing.s3, plan.stage_dir
    objects, local = plan.objects, plan.local
    todo = [n for n in names if not _is_complete(local.get(n), objects[n])]
    if not todo:
        log.info("staged copy of dataset %s complete (%d files)", stage_dir.name, len(names))
        return
    room = _room(stage_dir, (objects[n][0] for n in todo))
    if not room.fits:
        raise DatasetError(f"cannot stage dataset {stage_dir.name}: {room.describe(stage_dir)}")
    stage_dir.mkdir(parents=True, exist_ok=True)
    (stage_dir / MARKER).touch()
    total = sum(objects[n][0] for n in todo)
    workers = min(_workers(), len(todo))
    log.info(
        "staging %d files (%s) of dataset %s to %s with %d parallel GETs (%d already there)",
        len(todo), _human(total), stage_dir.name, stage_dir, workers, len(names) - len(todo),
    )  # fmt: skip
    client = location.client(max_pool_connections=workers)
    desc = f"staging dataset {stage_dir.name}"
    progress = _Progress(total, desc, "B", total >= PROGRESS_MIN_BYTES)
    pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="stage")
    queue = iter(todo)
    pending: dict[concurrent.futures.Future, str] = {}

    def submit(count: int) -> None:  # a bounded window: not 1M futures at once
        for name in itertools.islice(queue, count):
            pending[pool.submit(_download, client, location, name, stage_dir)] = name

    try:
        submit(workers * 4)
        while pending:
            done, _ = concurrent.futures.wait(pending, return_when="FIRST_COMPLETED")
            for future in done:
                name = pending.pop(future)
                try:
                    progress.update(future.result())
                except Exception as exc:
                    key = f"s3://{location.bucket}/{location.prefix}{name}"
                    raise DatasetError(
                        f"staging {key} to {stage_dir} failed: {type(exc).__name__}: {exc}"
                    ) from exc
            submit(len(done))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        progress.close()


def link_targets(files: Iterable[Path]) -> list[str]:
    """Where the split's link for each file points (same order): the staged local copy in
    mode `stage` (staging what is missing first), else the file itself (absolute)."""
    targets = []
    for filepath in files:
        target = os.fspath(filepath)
        targets.append(target if os.path.isabs(target) else os.path.abspath(target))
    if not targets:
        return targets
    plan = current_plan()
    listing = plan.listing
    if plan.mode != "stage" or listing is None or listing.s3 is None or plan.stage_dir is None:
        return targets
    root, objects = os.fspath(listing.root) + os.sep, plan.objects
    names = []
    for target in targets:
        name = target[len(root) :] if target.startswith(root) else None
        names.append(name if name in objects else None)
    staged = [n for n in names if n is not None]
    stage(plan, staged)
    if len(staged) < len(targets):
        outside = len(targets) - len(staged)
        log.warning("%d files are not in the S3 listing: linked into the mount", outside)
    prefix = os.fspath(plan.stage_dir) + os.sep
    return [prefix + n if n is not None else t for n, t in zip(names, targets, strict=True)]
