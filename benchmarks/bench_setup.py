#!/usr/bin/env python3
"""Benchmark the dataset setup path a train container runs before training, against its floor.

For each size (default 1k, 10k, 100k and 1M images) this writes a synthetic CVAT dataset with
empty placeholder image files (not timed), then, each in a fresh Python process with the roots
pointed at temp dirs by env:

- **setup**: the full setup path — `get_cvat_dataset()`, `create_directory_structure()`, COCO
  (or YOLO) labels for train/val, symlinks for train/val: what the platform's stock setup.py
  does — timed from before the runtime's import to the last link;
- **floor**: what no setup can avoid — one bare `os.symlink` per image file (same count, same
  targets, into a fresh directory on the same filesystem; target strings made before the clock
  starts) plus one bare expat pass (no handlers) over the same annotations.xml.

Floor and setup runs alternate (`--runs` setups between `--runs` + 1 floors) and setup/floor is
the best (least disturbed) setup over the best floor: on a shared machine the same work can take
several times longer from one minute to the next. Printed per size: wall and CPU seconds,
images/s, max RSS of the setup process, the floor and setup/floor. Targets (issue 14): setup
<= 1.3 x floor at 100k and 1M images, max RSS <= 1.5 GB at 1M.

    python benchmarks/bench_setup.py                       # 1000 10000 100000 1000000
    python benchmarks/bench_setup.py --sizes 100000 --runs 5
    python benchmarks/bench_setup.py --sizes 1000 --task detection --labels yolo

1M images need about 3M inodes and ~4 GB on the `--tmp` filesystem (checked first); everything
is removed afterwards. Symlink creation is kernel work whose cost varies a lot with the
filesystem and the machine's load: compare setup with the floor of the same run, not with
figures from another day.
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

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from trainkit import vendor  # noqa: E402
from trainkit.synthetic import write_cvat_dataset  # noqa: E402

# Runs inside the child process, cwd = a workspace holding the runtime and train_config.json.
SETUP = """
import json, resource, sys, time
t0 = time.perf_counter()
from trainkit_runtime import cvat_dataset as cd
from cvat_dataset import (create_directory_structure, create_test_images, create_test_labels,
    create_train_images, create_train_labels, get_cvat_dataset)

labels_fn = cd.write_yolo_labels if sys.argv[1] == "yolo" else cd.coco_labels_writer(sys.argv[2])
config, label_names, train_data, val_data = get_cvat_dataset()
create_directory_structure()
create_train_labels(labels_fn, train_data, label_names)
create_test_labels(labels_fn, val_data, label_names)
create_train_images(train_data)
create_test_images(val_data)
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"seconds": time.perf_counter() - t0, "cpu": usage.ru_utime + usage.ru_stime,
                  "images": len(train_data) + len(val_data), "max_rss_kb": usage.ru_maxrss}))
"""

# The floor, in its own process: bare symlinks (same targets) + one handler-less expat pass.
FLOOR = """
import json, os, sys, time, xml.parsers.expat
source, xml_path, out = sys.argv[1:4]
with os.scandir(source) as entries:
    names = sorted(e.name for e in entries if e.is_file() and not e.name.startswith("."))
pairs = [(f"{source}/{n}", f"{out}/{n}") for n in names]
os.mkdir(out)
symlink = os.symlink
t0 = time.perf_counter()
for target, link in pairs:
    symlink(target, link)
t1 = time.perf_counter()
parser = xml.parsers.expat.ParserCreate()
with open(xml_path, "rb") as fh:
    parser.ParseFile(fh)
t2 = time.perf_counter()
print(json.dumps({"links": len(pairs), "symlinks": t1 - t0, "expat": t2 - t1}))
"""

BYTES_PER_IMAGE = 4096  # a generous bound: XML, directory entries, a symlink block each
INODES_PER_IMAGE = 3  # placeholder file + setup's link + the floor's link


def check_disk(tmp: Path, n: int) -> None:
    """Refuse (one line) when `tmp` cannot hold `n` placeholder images, links and floor."""
    st = os.statvfs(tmp)
    free_bytes, free_inodes = st.f_bavail * st.f_frsize, st.f_favail
    need_bytes, need_inodes = n * BYTES_PER_IMAGE, n * INODES_PER_IMAGE + 1000
    if free_bytes < need_bytes or (st.f_files and free_inodes < need_inodes):
        raise SystemExit(
            f"bench_setup: {n} images need ~{need_bytes / 1e9:.1f} GB and {need_inodes} inodes "
            f"in {tmp}; free: {free_bytes / 1e9:.1f} GB, {free_inodes} inodes (use --tmp)"
        )


def _workspace(root: Path) -> Path:
    work = root / "workspace"
    work.mkdir()
    vendor.install_runtime(work)
    (work / "train_config.json").write_text(json.dumps({"train-split": 0.8, "test-split": 0.2}))
    (work / "presets.json").write_text("{}")
    (work / "bench_setup_child.py").write_text(SETUP)
    (work / "bench_floor_child.py").write_text(FLOOR)
    return work


def _child(argv: list[str], cwd: Path, env: dict[str, str], what: str) -> dict:
    proc = subprocess.run(
        [sys.executable, *argv], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(f"{what} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_floor(root: Path, work: Path, env: dict[str, str]) -> dict:
    dataset = root / "minio" / "datasets" / "1"
    out = root / "floor-links"
    shutil.rmtree(out, ignore_errors=True)
    try:
        xml_path = dataset / "annotations" / "annotations.xml"
        argv = ["bench_floor_child.py", str(dataset), str(xml_path), str(out)]
        result = _child(argv, work, env, "floor")
    finally:
        shutil.rmtree(out, ignore_errors=True)
    result["seconds"] = result["symlinks"] + result["expat"]
    return result


def run_setup(root: Path, work: Path, env: dict[str, str], labels: str, coco_type: str) -> dict:
    shutil.rmtree(root / "datasets", ignore_errors=True)  # a fresh container each run
    return _child(["bench_setup_child.py", labels, coco_type], work, env, "setup")


def run_size(root: Path, n: int, task: str, labels: str, runs: int) -> dict:
    t0 = time.perf_counter()
    write_cvat_dataset(root / "minio", 1, n, task, seed=0, placeholder=True)
    generated = time.perf_counter() - t0
    work = _workspace(root)
    env = {
        **os.environ,
        "MINIO_ROOT": str(root / "minio"),
        "DATASETS_ROOT": str(root / "datasets"),
        "DATASET_ID": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    for var in ("S3_HOST", "S3_BUCKET_NAME", "TRAINKIT_DATA_MODE"):
        env.pop(var, None)
    coco_type = {"classification": "classification", "detection": "detection"}.get(
        task, "segmentation"
    )
    floors = [run_floor(root, work, env)]
    setups = []
    for _ in range(runs):  # floor, setup, floor, setup, ..., floor
        setups.append(run_setup(root, work, env, labels, coco_type))
        floors.append(run_floor(root, work, env))
    setup = min(setups, key=lambda r: r["seconds"])
    floor = min(floors, key=lambda r: r["seconds"])
    if setup["images"] != n or floor["links"] != n:
        raise SystemExit(f"expected {n} images, setup used {setup['images']}")
    return {
        **setup,
        "floor": floor,
        "ratio": setup["seconds"] / floor["seconds"],
        "max_rss_kb": max(r["max_rss_kb"] for r in setups),
        "generated_s": generated,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000, 1000000])
    parser.add_argument("--task", default="classification",
                        choices=["classification", "detection", "segmentation"])  # fmt: skip
    parser.add_argument("--labels", default="coco", choices=["coco", "yolo"])
    parser.add_argument("--runs", type=int, default=3,
                        help="setup runs per size, between floor runs; best of each")  # fmt: skip
    parser.add_argument("--tmp", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args(argv)

    print(f"setup benchmark: task={args.task} labels={args.labels} cpus={os.cpu_count()} "
          f"tmp={args.tmp} load={os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
    times: dict[int, float] = {}
    for n in args.sizes:
        check_disk(args.tmp, n)
        root = Path(tempfile.mkdtemp(prefix=f"bench-setup-{n}-", dir=args.tmp))
        try:
            r = run_size(root, n, args.task, args.labels, args.runs)
        finally:
            shutil.rmtree(root, ignore_errors=True)
        times[n] = r["seconds"]
        floor = r["floor"]
        print(
            f"{n:>7} images: {r['seconds']:7.2f} s wall, {r['cpu']:6.2f} s CPU, "
            f"{n / r['seconds']:9.0f} images/s, max RSS {r['max_rss_kb'] / 1024:.0f} MB; "
            f"floor {floor['seconds']:.2f} s ({floor['symlinks']:.2f} s symlinks + "
            f"{floor['expat']:.2f} s expat), setup/floor {r['ratio']:.2f} "
            f"(dataset generated in {r['generated_s']:.1f} s)",
            flush=True,
        )
    if 10000 in times and len(times) > 1:
        largest = max(times)
        if largest != 10000:
            ratio = times[largest] / times[10000]
            print(f"t({largest})/t(10000) = {ratio:.2f} (linear: {largest / 10000:.0f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
