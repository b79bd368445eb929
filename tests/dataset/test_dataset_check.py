"""`trainkit dataset check`: report, exit status, JSON, and a preview drawn as the example
datamodules read the labels."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.support.cvat import REPO, tag_image, task_xml, write_xml
from trainkit import cli, dataset_preview
from trainkit.synthetic import write_cvat_dataset

TASKS = {
    "classification": ("COCO", "Classification/TinyNet"),
    "detection": ("YOLO", "Detection/TinyDet"),
    "segmentation": ("COCO", "Segmentation/TinySeg"),
}


def check(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main(["dataset", "check", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def minio(tmp_path_factory):
    root = tmp_path_factory.mktemp("minio")
    for i, task in enumerate(TASKS, start=1):
        write_cvat_dataset(root, i, 30, task, seed=i, size=72, n_classes=4, shapes="mixed")
    return root


@pytest.mark.parametrize("task", list(TASKS))
def test_check_each_task_reports_and_draws(minio, tmp_path, capsys, task):
    dataset_id = str(list(TASKS).index(task) + 1)
    preview, report_file = tmp_path / "preview.png", tmp_path / "report.json"
    code, out, _ = check(capsys, "--minio", str(minio), "--dataset-id", dataset_id, "--task",
                         task, "--preview", str(preview), "--json", str(report_file))  # fmt: skip
    assert code == 0, out
    assert "OK: setup would succeed" in out
    report = json.loads(report_file.read_text())
    assert report["ok"] and report["label_format"] == TASKS[task][0]
    assert report["images"]["matched"] == 30
    assert report["split"] == {"train": 24, "val": 6, "train_split": 0.8, "test_split": 0.2,
                               "seed": 42}  # fmt: skip
    total = report["conversion"]["total"]
    assert total["not_used"].get("polyline") and total["not_used"].get("points")
    if task == "classification":
        assert total["used"] == {"tag": 30}
    else:
        assert set(total["used"]) == {"box", "polygon", "ellipse", "mask"}
        assert (
            "rotated box → " + ("enclosing box" if task == "detection" else "polygon")
            in (total["converted"])
        )
    assert [label["name"] for label in report["labels"]] == ["circle", "square", "triangle",
                                                             "cross"]  # fmt: skip
    # the preview: right size, and drawn-on pixels differ from the source image
    from PIL import Image

    with Image.open(preview) as sheet:
        assert sheet.size == dataset_preview.sheet_size(12) == tuple(report["preview"]["size"])
        assert sheet.format == "PNG"
        drawn = np.asarray(sheet.convert("RGB"), dtype=np.int16)
    first = report["preview"]["images"][0]
    _split, name = first.split("/")
    with Image.open(minio / "datasets" / dataset_id / name) as source:
        src = np.asarray(source.convert("RGB"), dtype=np.int16)  # 72 px: scaled x192/72
    scale = dataset_preview.CELL / 72
    region = _first_label_region(minio / "datasets" / dataset_id, name, task)
    x0, y0, x1, y1 = (min(192, max(0, int(v * scale))) for v in region)
    inside = drawn[y0 + 2 : y1 - 2, x0 + 2 : x1 - 2]
    resized = np.asarray(
        Image.fromarray(src.astype(np.uint8)).resize((192, 192), Image.Resampling.BILINEAR),
        dtype=np.int16,
    )[y0 + 2 : y1 - 2, x0 + 2 : x1 - 2]
    assert np.abs(inside - resized).mean() > 10, "labels are drawn over the image"


def _first_label_region(dataset_dir: Path, name: str, task: str):
    """Where something is drawn in the first cell: a box for detection (its first label's
    enclosing box), the whole caption bar region for classification."""
    if task == "classification":
        return (0, 0, 72, 72 * 14 / 192 + 1)  # the class caption bar at the top
    from trainkit_runtime import cvat_dataset as cd

    _names, data, _ = cd.match_files_to_annotations(
        [dataset_dir / name], dataset_dir / cd.ANNOTATIONS_SUBFILEPATH
    )
    coco = cd.as_coco(_names, data, dataset_type="detection")
    x, y, w, h = coco["annotations"][0]["bbox"]
    return (x, y, x + w, y + h)


def test_check_fails_where_setup_would_and_still_writes_the_json(minio, tmp_path, capsys):
    # dataset 1 is classification (tags + mixed shapes): detection works on its shapes, but a
    # tag-only dataset does not
    root = tmp_path / "m"
    dataset_dir = root / "datasets" / "7"
    dataset_dir.mkdir(parents=True)
    names = [f"{i}.jpg" for i in range(6)]
    for name in names:
        (dataset_dir / name).write_bytes(b"")
    images = "".join(tag_image(n, "a", i) for i, n in enumerate(names))
    write_xml(dataset_dir / "annotations" / "annotations.xml", task_xml(["a"], images))
    report_file = tmp_path / "r.json"
    code, out, err = check(capsys, "--minio", str(root), "--dataset-id", "7", "--task",
                           "detection", "--json", str(report_file),
                           "--preview", str(tmp_path / "p.png"))  # fmt: skip
    assert code == 1
    assert "FAILED: setup would stop: detection needs" in out
    lines = [line for line in err.splitlines() if line.startswith("trainkit dataset: error:")]
    assert len(lines) == 1 and "<tag>" in lines[0]
    report = json.loads(report_file.read_text())
    assert report["ok"] is False and "detection needs" in report["error"]
    assert report["images"]["matched"] == 6
    assert not (tmp_path / "p.png").exists()  # no picture of a failed set-up
    assert sorted(p.name for p in dataset_dir.iterdir()) == sorted([*names, "annotations"])


def test_check_refuses_to_replace_files_and_bad_arguments(minio, tmp_path, capsys):
    existing = tmp_path / "p.png"
    existing.write_bytes(b"mine")
    code, _, err = check(capsys, "--minio", str(minio), "--dataset-id", "2", "--task",
                         "detection", "--preview", str(existing))  # fmt: skip
    assert code == 2 and "exists; pass --force" in err
    assert existing.read_bytes() == b"mine"
    code, _, err = check(capsys, "--minio", str(minio), "--dataset-id", "1", "--task",
                         "classification", "--label-format", "YOLO")  # fmt: skip
    assert code == 2 and "detection only" in err
    code, _, err = check(capsys, "--minio", str(tmp_path), "--dataset-id", "1", "--task",
                         "detection")  # fmt: skip
    assert code == 2 and "no datasets/ directory" in err


def test_json_to_stdout(minio, capsys):
    code, out, _ = check(capsys, "--minio", str(minio), "--dataset-id", "3", "--task",
                         "segmentation", "--json", "-")  # fmt: skip
    assert code == 0
    report = json.loads(out)
    assert report["conversion"]["total"]["converted"]["mask → COCO RLE"] > 0


def test_synthetic_form_still_works(tmp_path, capsys):
    assert cli.main(["dataset", "--out", str(tmp_path), "--id", "1", "--images", "3"]) == 0
    assert (tmp_path / "datasets" / "1" / "annotations" / "annotations.xml").is_file()
    assert cli.main(["dataset", "--images", "3"]) == 2
    assert "--out DIR is required" in capsys.readouterr().err


# --- the preview reads labels as the example datamodules do --------------------------------


def _load_datamodule(arch: str):
    path = REPO / "templates" / "Acme" / arch / "docker" / "datamodule.py"
    spec = importlib.util.spec_from_file_location(f"dm_{arch.replace('/', '_')}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("task", list(TASKS))
def test_preview_reads_what_the_example_datamodule_reads(minio, tmp_path, task):
    pytest.importorskip("lightning")
    from trainkit import dataset_check

    fmt, arch = TASKS[task]
    dataset_id = str(list(TASKS).index(task) + 1)
    _report, names = dataset_check.run_setup(minio, dataset_id, task, fmt, {}, tmp_path)
    module = _load_datamodule(arch)
    ours = dataset_preview.read_split(tmp_path, "train", task, fmt)
    if task == "classification":
        theirs = module.read_coco_classes(tmp_path / "labels/train/labels.json", len(names))
        assert [(s.file_name, s.image_class) for s in ours] == theirs
    elif task == "detection":
        theirs = module.read_samples(tmp_path / "images/train", tmp_path / "labels/train",
                                     len(names))  # fmt: skip
        assert [s.file_name for s in ours] == [name for name, _ in theirs]
        for sample, (_name, boxes) in zip(ours, theirs, strict=True):
            mine = [(cls, *value) for cls, _kind, value in sample.shapes]
            assert np.allclose(np.asarray(mine, dtype=np.float32).reshape(-1, 5), boxes)
    else:
        theirs = module.read_samples(tmp_path / "labels/train/labels.json", len(names))
        for sample, (name, width, height, shapes) in zip(ours, theirs, strict=True):
            assert sample.file_name == name
            assert [(cls + 1, value) for cls, _kind, value in sample.shapes] == shapes
            mask = module.rasterise(shapes, width, height, width)
            assert set(np.unique(mask)) - {0}  # something is painted, masks included


def test_config_gives_the_split_and_bad_values_fail_like_setup(minio, tmp_path, capsys):
    config = tmp_path / "train_config.json"
    config.write_text(json.dumps({"train-split": 0.5, "test-split": 0.5, "split-seed": 7}))
    code, out, _ = check(capsys, "--minio", str(minio), "--dataset-id", "2", "--task",
                         "detection", "--config", str(config))  # fmt: skip
    assert code == 0 and "split: 15 train, 15 val (0.5/0.5, seed 7)" in out
    config.write_text(json.dumps({"train-split": 0.9, "test-split": 0.3}))
    code, out, err = check(capsys, "--minio", str(minio), "--dataset-id", "2", "--task",
                           "detection", "--config", str(config))  # fmt: skip
    assert code == 1 and "'train-split' = 0.9 + 'test-split' = 0.3" in err
