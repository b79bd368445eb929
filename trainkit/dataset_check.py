"""`trainkit dataset check`: the container's dataset set-up on a mocked MinIO folder, no training.

Runs what a generated setup.py runs (trainkit_runtime: match annotations.xml to the files,
seeded split, COCO or YOLO labels for each split, image links) into a temporary
DATASETS_ROOT, then reports what came out: images matched and skipped, shapes by kind, what
was converted, not used by the task or dropped (with reasons), the label map and the split
sizes. Exit status 1 where setup would fail (with setup's own one-line error). `--preview`
draws sample images with their labels read back as the example datamodule reads them
(trainkit/dataset_preview.py); `--json` writes the report as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from trainkit.errors import TrainkitError, UsageError

TASKS = ("classification", "detection", "segmentation")
LABEL_FORMATS = ("COCO", "YOLO")
DEFAULT_SAMPLES = 12
CLASSES_FILENAME = "classes.names"  # what the template's YOLO setup.py writes


@contextlib.contextmanager
def runtime_roots(minio: Path, datasets: Path, dataset_id: str) -> Iterator[None]:
    """Point the runtime's roots (read from the environment at import time) at a mocked
    MinIO folder and a DATASETS_ROOT, for this block only; S3 listing off."""
    from trainkit_runtime import dataset

    saved = (dataset.MINIO_ROOT_PATH, dataset.MOUNTED_DATASETS_ROOT_PATH,
             dataset.DATASETS_ROOT_PATH, dict(dataset.DATA_DIRS))  # fmt: skip
    env_keys = ("DATASET_ID", "S3_HOST", "S3_BUCKET_NAME")
    saved_env = {k: os.environ.get(k) for k in env_keys}
    dataset.MINIO_ROOT_PATH = str(minio)
    dataset.MOUNTED_DATASETS_ROOT_PATH = str(minio / "datasets")
    dataset.DATASETS_ROOT_PATH = str(datasets)
    os.environ["DATASET_ID"] = dataset_id
    os.environ.pop("S3_HOST", None)
    os.environ.pop("S3_BUCKET_NAME", None)
    try:
        yield
    finally:
        (dataset.MINIO_ROOT_PATH, dataset.MOUNTED_DATASETS_ROOT_PATH,
         dataset.DATASETS_ROOT_PATH, data_dirs) = saved  # fmt: skip
        dataset.DATA_DIRS.clear()
        dataset.DATA_DIRS.update(data_dirs)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _split_config(config_file: Path | None) -> dict:
    if config_file is None:
        return {}
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"--config {config_file}: {exc}") from None
    if not isinstance(config, dict):
        raise UsageError(f"--config {config_file}: not a JSON object")
    return config


def _write_labels(labels_dir: Path, names: list[str], data: dict, task: str, fmt: str, report):
    """What the template's setup.py writes for this task and label format."""
    from trainkit_runtime import cvat_labels

    if fmt == "YOLO":
        labels = cvat_labels.as_yolo(names, data, report=report)
        (labels_dir / CLASSES_FILENAME).write_text("\n".join(names) + "\n", encoding="utf-8")
        for image_path, lines in labels.items():
            text = "\n".join(lines) + "\n"
            (labels_dir / f"{Path(image_path).stem}.txt").write_text(text, encoding="utf-8")
    else:
        coco = cvat_labels.as_coco(names, data, dataset_type=task, report=report)
        cvat_labels.write_json_atomically(labels_dir / "labels.json", coco)


def run_setup(minio: Path, dataset_id: str, task: str, fmt: str, config: dict, root: Path):
    """The set-up conversion into `root` → (report dict, label names). DatasetError where
    setup would fail (the report so far is attached as `exc.report`)."""
    from trainkit_runtime import cvat_dataset as cd
    from trainkit_runtime.cvat_labels import ShapeReport

    report: dict[str, Any] = {"task": task, "label_format": fmt, "dataset_id": dataset_id}
    try:
        with runtime_roots(minio, root, dataset_id):
            names, files, match = cd.load_cvat_dataset()
            report["images"] = {
                "files": match.files,
                "image_entries": match.images,
                "matched": match.matched,
                "sizes_from_headers": match.sizes_from_headers,
                "video_tracks": match.video_tracks,
                "video_frames": match.video_frames,
                "outside_shapes_skipped": match.outside_shapes,
            }
            report["notes"], report["problems"] = match.notes(), match.problems()
            report["labels"] = [{"index": i, "name": n} for i, n in enumerate(names)]
            train_size, test_size = cd.get_split_sizes(config)
            seed = config.get("split-seed", cd.DEFAULT_SPLIT_SEED)
            if isinstance(seed, bool) or not isinstance(seed, int):
                raise cd.DatasetError(
                    f"train_config.json: 'split-seed' = {seed!r} is not an integer"
                )
            train, val = cd.split_dataset(files, train_size, test_size, seed=seed)
            report["split"] = {"train": len(train), "val": len(val), "train_split": train_size,
                               "test_split": test_size, "seed": seed}  # fmt: skip
            cd.create_directory_structure()
            total = ShapeReport(task=task)
            report["conversion"] = {}
            for split, data in (("train", train), ("val", val)):
                shapes = ShapeReport()
                _write_labels(root / "labels" / split, names, data, task, fmt, shapes)
                report["conversion"][split] = shapes.as_dict()
                total.merge(shapes)
                cd.create_images(root / "images" / split, data)
            report["conversion"]["total"] = total.as_dict()
            for label in report["labels"]:
                label["annotations"] = total.per_label.get(label["name"], 0)
    except cd.DatasetError as exc:
        exc.report = report  # type: ignore[attr-defined]
        raise
    return report, names


def _listed(counter: dict) -> str:
    return ", ".join(f"{n} {k}" for k, n in sorted(counter.items(), key=lambda kv: -kv[1]))


def format_report(report: dict) -> list[str]:
    lines = []
    images = report.get("images")
    if images:
        lines.append(
            f"dataset {report['dataset_id']}: {images['matched']} images with file and "
            f"annotations ({images['files']} files, {images['image_entries']} <image> entries)"
        )
        lines += [f"  note: {n}" for n in report.get("notes", [])]
        lines += [f"  skipped: {p}" for p in report.get("problems", [])]
    total = report.get("conversion", {}).get("total")
    if total:
        lines.append(f"shapes: {_listed(total['shapes']) or 'none'}")
        lines.append(
            f"{report['task']} ({report['label_format']}): {total['annotations']} annotations "
            f"on {total['images_with_labels']} of {total['images']} images"
        )
        for key, title in (("converted", "converted"), ("not_used", "not used by the task"),
                           ("dropped", "dropped")):  # fmt: skip
            if total[key]:
                lines.append(f"  {title}: {_listed(total[key])}")
        if total["multi_tag_images"]:
            lines.append(
                f"  {total['multi_tag_images']} images with several tags: the first tag is "
                "the image's class (all are in labels.json)"
            )
    if report.get("labels"):
        shown = ", ".join(
            f"{label['index']} {label['name']!r}"
            + (f" ({label['annotations']})" if "annotations" in label else "")
            for label in report["labels"]
        )
        lines.append(f"labels ({len(report['labels'])}): {shown}")
    split = report.get("split")
    if split:
        lines.append(
            f"split: {split['train']} train, {split['val']} val "
            f"({split['train_split']}/{split['test_split']}, seed {split['seed']})"
        )
    preview = report.get("preview")
    if preview:
        w, h = preview["size"]
        lines.append(f"preview: {preview['path']} ({len(preview['images'])} images, {w}x{h} px)")
    if report.get("ok"):
        lines.append("OK: setup would succeed")
    else:
        lines.append(f"FAILED: setup would stop: {report.get('error')}")
    return lines


def _output_path(path: Path | None, force: bool, what: str) -> Path | None:
    """An output file the user named: never replace an existing file without --force, never
    write through a symlink or onto a directory."""
    if path is None or str(path) == "-":
        return path
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise UsageError(f"{what} {path}: exists and is not a regular file")
    if path.exists() and not force:
        raise UsageError(f"{what} {path}: exists; pass --force to replace it")
    if not path.parent.is_dir():
        raise UsageError(f"{what} {path}: directory {path.parent} does not exist")
    return path


@contextlib.contextmanager
def _quiet_runtime(verbose: bool) -> Iterator[None]:
    """The runtime's INFO/WARNING lines repeat what the report says: shown with -v only."""
    loggers = [logging.getLogger(name) for name in ("cvat_dataset", "dataset")]
    levels = [lg.level for lg in loggers]
    if not verbose:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def check(args: argparse.Namespace) -> int:
    with _quiet_runtime(getattr(args, "verbose", False)):
        return _check(args)


def _check(args: argparse.Namespace) -> int:
    from trainkit import dataset_preview
    from trainkit_runtime.dataset import DatasetError

    minio = args.minio
    if not (minio / "datasets").is_dir():
        raise UsageError(f"--minio {minio}: no datasets/ directory (a mocked MinIO root)")
    if args.label_format == "YOLO" and args.task != "detection":
        raise UsageError("--label-format YOLO: YOLO labels are boxes, for detection only")
    if args.samples < 1:
        raise UsageError(f"--samples {args.samples}: need at least 1")
    preview = _output_path(args.preview, args.force, "--preview")
    json_out = _output_path(args.json, args.force, "--json")
    config = _split_config(args.config)
    fmt = args.label_format or ("YOLO" if args.task == "detection" else "COCO")
    root = Path(tempfile.mkdtemp(prefix="trainkit-check-"))
    try:
        try:
            report, names = run_setup(minio, str(args.dataset_id), args.task, fmt, config, root)
            report["ok"], report["error"] = True, None
        except DatasetError as exc:
            report, names = getattr(exc, "report", {}), []
            report.update(ok=False, error=str(exc))
            report.setdefault("task", args.task)
            report.setdefault("label_format", fmt)
            report.setdefault("dataset_id", str(args.dataset_id))
        if report["ok"] and preview is not None:
            samples = [
                s
                for split in ("train", "val")
                for s in dataset_preview.read_split(root, split, args.task, fmt)
            ]
            chosen = dataset_preview.pick(samples, args.samples)
            size = dataset_preview.write_contact_sheet(chosen, root / "images", names, preview)
            report["preview"] = {
                "path": str(preview),
                "size": list(size),
                "images": [f"{s.split}/{s.file_name}" for s in chosen],
            }
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if json_out is not None and str(json_out) == "-":
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        print("\n".join(format_report(report)))
        if json_out is not None:
            tmp = json_out.with_name(f".{json_out.name}.tmp")
            tmp.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", "utf-8")
            tmp.replace(json_out)
    if not report["ok"]:
        raise TrainkitError(f"setup would fail: {report['error']}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "check",
        help="run the container's dataset set-up on a mocked MinIO folder and report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--minio", required=True, type=Path, help="mocked MinIO root")
    parser.add_argument("--dataset-id", required=True, help="dataset id (datasets/<id>/)")
    parser.add_argument("--task", required=True, choices=TASKS)
    parser.add_argument(
        "--label-format",
        choices=LABEL_FORMATS,
        help="label files setup writes (default: YOLO for detection, else COCO)",
    )
    parser.add_argument("--preview", type=Path, help="write a contact sheet PNG here")
    parser.add_argument(
        "--samples", type=int, default=DEFAULT_SAMPLES, help="images in the preview (default 12)"
    )
    parser.add_argument("--json", type=Path, help="write the report as JSON here ('-': stdout)")
    parser.add_argument(
        "--config", type=Path, help="train_config.json (train-split, test-split, split-seed)"
    )
    parser.add_argument("--force", action="store_true", help="replace existing output files")
    parser.set_defaults(func=check)
