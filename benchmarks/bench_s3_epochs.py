#!/usr/bin/env python3
"""S3 requests and seconds of setup, epoch 1 and epoch 2 in each data mode, over a real s3fs
mount of moto (trainkit_runtime/staging.py: `stage` vs `stream`).

    python benchmarks/bench_s3_epochs.py                        # 1,000 and 10,000 images
    python benchmarks/bench_s3_epochs.py --images 1000 --modes stream --s3fs-options kernel_cache

For each size and mode: a fresh moto server (S3 + STS) gets a bucket with a synthetic CVAT
classification dataset (`--image-bytes` per image, default 4 KiB); the runtime's `mount-s3.sh`
exchanges a token and mounts it with s3fs (its default options: local file cache, week-long
stat cache, `enable_noobj_cache`; `--s3fs-options` adds to them); the classification setup.py
(tests/support/s3_classification_setup.py) runs with TRAINKIT_DATA_MODE set; then two epochs,
an epoch being what the datamodule does to the files: open and read every image of
`$DATASETS_ROOT/images/{train,val}/` once, through the split's links. Every request moto logged
in each phase is counted and classified (bench_s3_requests.classify).

Targets (issue 14): `stage` = listing pages + 1 GET per image in total, 0 requests per epoch;
`stream`: epoch 2 as low as s3fs allows. s3fs 1.90's `s3fs_open` drops the object's cached stat
(`StatCache::DelStat` unless the file is open already) and asks S3 again, so no stat cache
option takes a stream epoch below one HEAD per image. Needs root (or FUSE access), s3fs and
moto[server].
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.bench_s3_requests import (  # noqa: E402
    DATASET_ID,
    SETUP_SCRIPT,
    classify,
    environment,
    mount,
    parse_request,
    upload_dataset,
)
from tests.support.s3 import mounted_fstype, unmount  # noqa: E402
from tests.support.services import fuse_missing, moto_server  # noqa: E402
from trainkit import vendor  # noqa: E402

PREFIX = f"datasets/{DATASET_ID}/"


def make_workspace(work: Path) -> Path:
    workspace = work / "workspace"
    workspace.mkdir(exist_ok=True)
    vendor.install_runtime(workspace)
    shutil.copy(SETUP_SCRIPT, workspace / "setup.py")
    (workspace / "train_config.json").write_text('{"train-split": 0.8, "test-split": 0.2}')
    return workspace


def run_setup(workspace: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "setup.py"],
        cwd=workspace,
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )


def read_epoch(datasets_root: Path) -> int:
    """Open and read every image of the split once, through its links; returns the bytes."""
    total = 0
    for split in ("train", "val"):
        with os.scandir(datasets_root / "images" / split) as entries:
            paths = sorted(entry.path for entry in entries)
        for path in paths:
            with open(path, "rb") as fh:  # noqa: PTH123 - what PIL's Image.open does
                total += len(fh.read())
    return total


def classify_methods(requests: list[str]) -> dict[str, int]:
    """Counts by kind (bench_s3_requests.classify) and method: `image GET`, `list_v2 GET`, ..."""
    counts: dict[str, int] = {"total": len(requests)}
    for line in requests:
        kind = next(k for k in classify([line], PREFIX) if k != "total")
        key = f"{kind} {parse_request(line)[0]}"
        counts[key] = counts.get(key, 0) + 1
    return counts


def phase(server, started: int, seconds: float, **extra) -> dict:
    counts = classify_methods(server.requests_seen()[started:])
    return {"seconds": round(seconds, 2), "requests": counts, **extra}


def measure(
    n_images: int,
    work: Path,
    mode: str,
    s3fs_options: str = "",
    image_bytes: int = 4096,
    epochs: int = 2,
    extra_env: dict[str, str] | None = None,
    setup_again: bool = False,
) -> dict:
    """Requests and seconds of setup and `epochs` epochs for one mode on a fresh moto + mount
    (`setup_again`: then setup once more, as a restarted container does: `setup2`)."""
    with moto_server(work) as server:
        upload_dataset(server, work / "upload", n_images, image_bytes=image_bytes)
        env = environment(work, server, mode)
        if s3fs_options:
            env["S3FS_OPTIONS"] = s3fs_options
        env.update(extra_env or {})
        minio, datasets = Path(env["MINIO_ROOT"]), Path(env["DATASETS_ROOT"])
        report: dict = {"images": n_images, "mode": mode, "s3fs_options": s3fs_options}
        try:
            mount(env)
            workspace = make_workspace(work)
            before = len(server.requests_seen())
            started = time.perf_counter()
            result = run_setup(workspace, env)
            if result.returncode != 0:
                raise RuntimeError(f"setup.py failed:\n{result.stdout}{result.stderr}")
            report["setup"] = phase(server, before, time.perf_counter() - started)
            for epoch in range(1, epochs + 1):
                before = len(server.requests_seen())
                started = time.perf_counter()
                read = read_epoch(datasets)
                report[f"epoch{epoch}"] = phase(
                    server, before, time.perf_counter() - started, bytes=read
                )
            if setup_again:
                before = len(server.requests_seen())
                started = time.perf_counter()
                result = run_setup(workspace, env)
                if result.returncode != 0:
                    raise RuntimeError(f"setup.py failed:\n{result.stdout}{result.stderr}")
                report["setup2"] = phase(server, before, time.perf_counter() - started)
        finally:
            unmount(minio)
    return report


def _summary(counts: dict) -> str:
    shown = {k: v for k, v in sorted(counts.items()) if k != "total" and v}
    return f"{counts['total']:>6} requests {json.dumps(shown)}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--modes", nargs="+", default=["stage", "stream"],
                        choices=["stage", "stream", "auto"])  # fmt: skip
    parser.add_argument("--s3fs-options", action="append", default=None,
                        help="extra s3fs -o options for stream (repeat for variants)")  # fmt: skip
    parser.add_argument("--image-bytes", type=int, default=4096)
    parser.add_argument("--json", action="store_true", help="print one JSON object per run")
    args = parser.parse_args(argv)
    if reason := fuse_missing():
        print(f"bench_s3_epochs: cannot mount here: {reason}", file=sys.stderr)
        return 2
    variants = []
    for mode in args.modes:
        options = (args.s3fs_options or [""]) if mode == "stream" else [""]
        variants += [(mode, opt) for opt in options]
    print(f"S3 epochs benchmark: {args.image_bytes} bytes per image, cpus={os.cpu_count()}, "
          f"load={os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
    for n_images in args.images:
        for mode, options in variants:
            with tempfile.TemporaryDirectory(prefix="bench-s3-epochs-") as tmp:
                work = Path(tmp)
                try:
                    report = measure(n_images, work, mode, options, args.image_bytes)
                finally:
                    if mounted_fstype(work / "minio"):
                        unmount(work / "minio")
            if args.json:
                print(json.dumps(report), flush=True)
                continue
            label = mode + (f" (-o {options})" if options else "")
            print(f"{n_images:>7} images, {label}:", flush=True)
            for name in ("setup", "epoch1", "epoch2"):
                ph = report[name]
                print(f"{'':>9}{name:<7} {ph['seconds']:8.2f} s {_summary(ph['requests'])}",
                      flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
