"""Count the S3 requests of dataset setup over a real s3fs mount (moto server's request log).

    python benchmarks/bench_s3_requests.py                    # 1,000 and 10,000 images
    python benchmarks/bench_s3_requests.py --images 2000 --readdir

For each size: a fresh moto server (S3 + STS) gets a bucket with a synthetic CVAT
classification dataset of empty placeholder images; the runtime's `mount-s3.sh` exchanges a token
and mounts it with s3fs; then the classification `setup.py` (tests/support/
s3_classification_setup.py: get_cvat_dataset → split → symlinks + labels) runs in a workspace
like the image's. Every request moto logged during setup is counted and classified. Target
(issue 2): at most 2 requests per 1,000 images beyond the annotation file; ListObjectsV2 costs
one request per 1,000 keys, a readdir through s3fs one HEAD per object (`--readdir` measures
that too, on a fresh mount). Needs root (or FUSE access), s3fs and moto[server].
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import boto3  # noqa: E402

from tests.support.s3 import mounted_fstype, unmount  # noqa: E402
from tests.support.services import MotoServer, fuse_missing, moto_server  # noqa: E402
from trainkit import vendor  # noqa: E402
from trainkit.synthetic import write_cvat_dataset  # noqa: E402

SETUP_SCRIPT = REPO / "tests" / "support" / "s3_classification_setup.py"
BUCKET = "bench-datasets"
DATASET_ID = "1"
ROLE_ARN = "arn:aws:iam::123456789012:role/bench"
_REQUEST_RE = re.compile(r'"(?:\x1b\[[0-9;]*m)*([A-Z]+) (\S+) HTTP/[0-9.]+')


def parse_request(line: str) -> tuple[str, str]:
    """(method, path?query) of one werkzeug access-log line."""
    match = _REQUEST_RE.search(line)
    return (match.group(1), match.group(2)) if match else ("?", line)


def classify(requests: list[str], dataset_prefix: str) -> dict[str, int]:
    """Counts by kind. `list_v2`: ListObjectsV2 pages of the dataset (scale with the images);
    `image`: HEAD/GET of one image key (should be 0: symlinks need no stat of their target);
    `annotation`: anything for `annotations/` (folder lookup, HEAD and GET of the XML);
    `dir_lookup`: s3fs resolving the folders `datasets/` and `datasets/<id>/` (HEAD `x`, `x/`,
    `x_$folder$` and a 2-key listing each: a fixed cost per path component); `other`."""
    counts: Counter[str] = Counter()
    annotations = f"{dataset_prefix}annotations"
    folders = set(_folders(dataset_prefix))
    for line in requests:
        method, target = parse_request(line)
        path, _, query = target.partition("?")
        key = path.removeprefix(f"/{BUCKET}").lstrip("/")
        params = dict(p.partition("=")[::2] for p in query.split("&") if p)
        prefix = params.get("prefix", "")
        if method == "GET" and not key and params.get("list-type") == "2":
            kind = "annotation" if prefix.startswith(annotations) else "list_v2"
        elif key.startswith(annotations) or (not key and prefix.startswith(annotations)):
            kind = "annotation"
        elif _is_folder_lookup(method, key, prefix, folders):
            kind = "dir_lookup"
        elif key.startswith(dataset_prefix) and key != dataset_prefix:
            kind = "image"
        else:
            kind = "other"
        counts[kind] += 1
    counts["total"] = len(requests)
    return dict(counts)


def _is_folder_lookup(method: str, key: str, prefix: str, folders: set[str]) -> bool:
    if method == "HEAD":
        return key.removesuffix("_$folder$").rstrip("/") in folders
    return method == "GET" and not key and prefix.rstrip("/") in folders


def _folders(prefix: str) -> list[str]:
    parts = prefix.strip("/").split("/")
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def upload_dataset(server: MotoServer, root: Path, n_images: int) -> None:
    client = boto3.client(
        "s3",
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    client.create_bucket(Bucket=BUCKET)
    dataset = write_cvat_dataset(
        root, DATASET_ID, n_images, "classification", seed=0, placeholder=True
    )
    files = [p for p in dataset.rglob("*") if p.is_file()]

    def put(path: Path) -> None:
        client.put_object(
            Bucket=BUCKET, Key=path.relative_to(root).as_posix(), Body=path.read_bytes()
        )

    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(put, files))


def environment(work: Path, server: MotoServer) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "S3_", "S3FS_", "OID_", "DATASET"))
        and key not in {"MINIO_ROOT", "OUTPUT_DIR"}
    }
    if ca_bundle := os.environ.get("AWS_CA_BUNDLE"):
        env["AWS_CA_BUNDLE"] = ca_bundle
    env.update(
        PYTHON=sys.executable,  # mount-s3.sh's STS helper: this environment's interpreter
        HOME=str(work / "home"),
        AWS_SHARED_CREDENTIALS_FILE=str(work / "home" / ".aws" / "credentials"),
        MINIO_ROOT=str(work / "minio"),
        DATASETS_ROOT=str(work / "datasets"),
        OUTPUT_DIR=str(work / "output"),
        S3FS_CACHE_DIR=str(work / "s3fs"),
        S3FS_ENSURE_DISKFREE="10",
        TMPDIR=str(work),
        S3_HOST=server.url,
        S3_BUCKET_NAME=BUCKET,
        S3_ROLE_ARN=ROLE_ARN,
        OID_ACCESS_TOKEN="bench-oidc-token",
        DATASET_ID=DATASET_ID,
    )
    return env


def mount(env: dict[str, str]) -> None:
    result = subprocess.run(
        ["bash", str(vendor.RUNTIME_DIR / "mount-s3.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"mount-s3.sh failed:\n{result.stdout}{result.stderr}")


def make_workspace(work: Path) -> Path:
    workspace = work / "workspace"
    workspace.mkdir()
    vendor.install_runtime(workspace)
    shutil.copy(SETUP_SCRIPT, workspace / "setup.py")
    (workspace / "train_config.json").write_text('{"train-split": 0.8, "test-split": 0.2}')
    return workspace


def measure(n_images: int, work: Path, readdir: bool = False, keep_requests: bool = False) -> dict:
    """Requests and time of setup.py for `n_images` placeholder images under `work`;
    `keep_requests` adds the (method, path?query) of each request as `request_lines`."""
    with moto_server(work) as server:
        upload_dataset(server, work / "upload", n_images)
        env = environment(work, server)
        minio = Path(env["MINIO_ROOT"])
        try:
            mount(env)
            workspace = make_workspace(work)
            before = len(server.requests_seen())
            started = time.perf_counter()
            result = subprocess.run(
                [sys.executable, "setup.py"],
                cwd=workspace,
                env=env,
                capture_output=True,
                text=True,
                timeout=1800,
                check=False,
            )
            seconds = time.perf_counter() - started
            if result.returncode != 0:
                raise RuntimeError(f"setup.py failed:\n{result.stdout}{result.stderr}")
            setup_requests = server.requests_seen()[before:]
            linked = sum(
                1
                for split in ("train", "val")
                for _ in (work / "datasets" / "images" / split).iterdir()
            )
        finally:
            unmount(minio)
        report = {
            "images": n_images,
            "linked": linked,
            "setup_seconds": round(seconds, 2),
            "requests": classify(setup_requests, f"datasets/{DATASET_ID}/"),
        }
        if keep_requests:
            report["request_lines"] = [parse_request(line) for line in setup_requests]
        counts = report["requests"]
        report["beyond_annotation_file"] = counts["total"] - counts.get("annotation", 0)
        scaling = counts.get("list_v2", 0) + counts.get("image", 0) + counts.get("other", 0)
        report["scaling_requests"] = scaling
        report["per_1000_images"] = round(scaling / (n_images / 1000), 2)
        if readdir:
            report["readdir"] = measure_readdir(server, env, work)
    return report


def measure_readdir(server: MotoServer, env: dict[str, str], work: Path) -> dict:
    """What listing the dataset folder through s3fs costs on a fresh mount (stock setup)."""
    env = {**env, "S3FS_CACHE_DIR": str(work / "s3fs-readdir")}
    minio = Path(env["MINIO_ROOT"])
    try:
        mount(env)
        before = len(server.requests_seen())
        started = time.perf_counter()
        folder = minio / "datasets" / DATASET_ID
        names = [entry.name for entry in os.scandir(folder) if entry.is_file()]
        seconds = time.perf_counter() - started
        requests = server.requests_seen()[before:]
    finally:
        unmount(minio)
    return {
        "files": len(names),
        "seconds": round(seconds, 2),
        "requests": classify(requests, f"datasets/{DATASET_ID}/"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument(
        "--readdir", action="store_true", help="also count a readdir through s3fs (slow)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object per size")
    args = parser.parse_args(argv)
    if reason := fuse_missing():
        print(f"bench_s3_requests: cannot mount here: {reason}", file=sys.stderr)
        return 2
    ok = True
    reports = []
    for n_images in args.images:
        with tempfile.TemporaryDirectory(prefix="bench-s3-") as tmp:
            work = Path(tmp)
            try:
                report = measure(n_images, work, readdir=args.readdir)
            finally:
                if mounted_fstype(work / "minio"):
                    unmount(work / "minio")
        reports.append(report)
        ok &= report["per_1000_images"] <= 2
        if args.json:
            print(json.dumps(report), flush=True)
            continue
        counts = report["requests"]
        print(
            f"{n_images:>7} images: setup {report['setup_seconds']:.2f} s, "
            f"{counts['total']} S3 requests = {counts.get('annotation', 0)} for the annotation "
            f"file + {counts.get('dir_lookup', 0)} fixed folder lookups + "
            f"{report['scaling_requests']} that scale with the images "
            f"({report['per_1000_images']:.2f} per 1,000 images; target <= 2)  "
            f"{json.dumps(counts, sort_keys=True)}",
            flush=True,
        )
        if "readdir" in report:
            rd = report["readdir"]
            print(
                f"{'':>7}         for comparison, a readdir through s3fs: {rd['files']} files, "
                f"{rd['requests']['total']} requests, {rd['seconds']:.2f} s",
                flush=True,
            )
    if len(reports) > 1 and not args.json:
        first, last = reports[0], reports[-1]
        extra = last["beyond_annotation_file"] - first["beyond_annotation_file"]
        per_1000 = extra / ((last["images"] - first["images"]) / 1000)
        print(
            f"marginal cost {first['images']} -> {last['images']} images: {extra} requests "
            f"beyond the annotation file = {per_1000:.2f} per 1,000 images"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
