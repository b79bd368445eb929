#!/usr/bin/env python3
"""Benchmark the dataset setup path a train container runs before training.

For each size (default 1k, 10k, 100k images) this writes a synthetic CVAT dataset with empty
placeholder image files (not timed), then runs the full setup path in a fresh Python process
with the roots pointed at temp dirs by env — `get_cvat_dataset()`, `create_directory_structure()`,
COCO labels for train/val, symlinks for train/val: what the platform's stock setup.py does — and
prints images/second per size and t(largest)/t(10k). Targets on a 2-core machine:
100k images < 10 s, t(100k)/t(10k) <= 12 (linear scaling).

    python benchmarks/bench_setup.py                    # 1000 10000 100000
    python benchmarks/bench_setup.py --sizes 1000 --task detection --labels yolo

Wall time depends on the machine's load; the CPU seconds of the setup process are printed too.
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


def _workspace(root: Path) -> Path:
    work = root / "workspace"
    work.mkdir()
    vendor.install_runtime(work)
    (work / "train_config.json").write_text(json.dumps({"train-split": 0.8, "test-split": 0.2}))
    (work / "presets.json").write_text("{}")
    (work / "bench_setup_child.py").write_text(SETUP)
    return work


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
    for var in ("S3_HOST", "S3_BUCKET_NAME"):
        env.pop(var, None)
    coco_type = {"classification": "classification", "detection": "detection"}.get(
        task, "segmentation"
    )
    results = []
    for _ in range(runs):
        shutil.rmtree(root / "datasets", ignore_errors=True)  # a fresh container each run
        proc = subprocess.run(
            [sys.executable, "bench_setup_child.py", labels, coco_type],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise SystemExit(f"setup failed for {n} images:\n{proc.stderr}")
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    best = min(results, key=lambda r: r["seconds"])
    if best["images"] != n:
        raise SystemExit(f"expected {n} images, setup used {best['images']}")
    return {**best, "generated_s": generated}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--task", default="classification",
                        choices=["classification", "detection", "segmentation"])  # fmt: skip
    parser.add_argument("--labels", default="coco", choices=["coco", "yolo"])
    parser.add_argument("--runs", type=int, default=1, help="runs per size; the best is shown")
    parser.add_argument("--tmp", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args(argv)

    print(f"setup benchmark: task={args.task} labels={args.labels} cpus={os.cpu_count()} "
          f"tmp={args.tmp} load={os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
    times: dict[int, float] = {}
    for n in args.sizes:
        root = Path(tempfile.mkdtemp(prefix=f"bench-setup-{n}-", dir=args.tmp))
        try:
            r = run_size(root, n, args.task, args.labels, args.runs)
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        times[n] = r["seconds"]
        print(
            f"{n:>7} images: {r['seconds']:7.2f} s wall, {r['cpu']:6.2f} s CPU, "
            f"{n / r['seconds']:9.0f} images/s, max RSS {r['max_rss_kb'] / 1024:.0f} MB "
            f"(dataset generated in {r['generated_s']:.1f} s)",
            flush=True,
        )
        shutil.rmtree(root, ignore_errors=True)  # after printing: slow for 200k entries
    if 10000 in times and len(times) > 1:
        largest = max(times)
        if largest != 10000:
            ratio = times[largest] / times[10000]
            print(f"t({largest})/t(10000) = {ratio:.2f} (linear: {largest / 10000:.0f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
