"""`trainkit dataset` / trainkit.synthetic: learnable, seeded CVAT datasets."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from trainkit.cli import main
from trainkit.errors import TrainkitError
from trainkit.synthetic import COLOURS, write_cvat_dataset
from trainkit_runtime import cvat_dataset as cd


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _parse(dataset_dir: Path):
    files = sorted(p for p in dataset_dir.iterdir() if p.is_file())
    return cd.match_files_to_annotations(files, dataset_dir / "annotations" / "annotations.xml")


@pytest.mark.parametrize("task", ["classification", "detection", "segmentation"])
def test_each_task_parses_and_matches_every_file(tmp_path, task):
    dataset_dir = write_cvat_dataset(tmp_path, 5, 24, task, seed=1)
    assert dataset_dir == tmp_path / "datasets" / "5"
    labels, data, report = _parse(dataset_dir)
    assert labels == ["circle", "square", "triangle"]
    assert report.matched == 24 and not report.problems()
    kind = {"classification": "tag", "detection": "box", "segmentation": "polygon"}[task]
    for path, image in data.items():
        shapes = cd.get_image_annotations(image, kind)
        assert 1 <= len(shapes) <= (1 if task == "classification" else 3)
        with Image.open(path) as im:
            assert im.size == (64, 64)


def test_classification_is_learnable_colour_marks_the_class(tmp_path):
    dataset_dir = write_cvat_dataset(tmp_path, 1, 30, "classification", seed=2, n_classes=2)
    _, data, _ = _parse(dataset_dir)
    for path, image in data.items():
        label = image["tag"]["@label"]
        box = image["box"]
        cx = (float(box["@xtl"]) + float(box["@xbr"])) / 2
        cy = (float(box["@ytl"]) + float(box["@ybr"])) / 2
        with Image.open(path) as im:
            pixel = im.convert("RGB").getpixel((int(cx), int(cy)))
        assert max(abs(p - c) for p, c in zip(pixel, COLOURS[label], strict=True)) <= 25
    assert set(Counter(i["tag"]["@label"] for i in data.values())) == {"circle", "square"}


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    write_cvat_dataset(tmp_path / "a", 1, 10, "segmentation", seed=4)
    write_cvat_dataset(tmp_path / "b", 1, 10, "segmentation", seed=4)
    write_cvat_dataset(tmp_path / "c", 1, 10, "segmentation", seed=5)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")


def test_project_export(tmp_path):
    dataset_dir = write_cvat_dataset(tmp_path, 1, 10, "detection", project=True)
    xml = (dataset_dir / "annotations" / "annotations.xml").read_text()
    assert "<project>" in xml and "<task>" in xml
    _, data, _ = _parse(dataset_dir)
    assert Counter(i["@subset"] for i in data.values()) == {"Train": 5, "Validation": 5}


def test_placeholder_files_are_empty(tmp_path):
    dataset_dir = write_cvat_dataset(tmp_path, 1, 50, "detection", placeholder=True)
    files = [p for p in dataset_dir.iterdir() if p.is_file()]
    assert len(files) == 50 and all(p.stat().st_size == 0 for p in files)
    assert _parse(dataset_dir)[2].matched == 50


def test_refuses_to_overwrite_and_force_keeps_user_files(tmp_path):
    dataset_dir = write_cvat_dataset(tmp_path, 1, 10, "classification")
    (dataset_dir / "user-photo.jpg").write_bytes(b"mine")
    with pytest.raises(TrainkitError, match="already exists and is not empty"):
        write_cvat_dataset(tmp_path, 1, 5, "classification")
    write_cvat_dataset(tmp_path, 1, 5, "classification", force=True)
    names = sorted(p.name for p in dataset_dir.iterdir() if p.is_file())
    assert names == [f"synthetic_{i:06d}.png" for i in range(5)] + ["user-photo.jpg"]
    assert (dataset_dir / "user-photo.jpg").read_bytes() == b"mine"
    assert not list((dataset_dir / "annotations").glob(".annotations-*"))


def test_cli(tmp_path, capsys):
    out = tmp_path / "minio"
    code = main(["dataset", "--out", str(out), "--id", "3", "--images", "6", "--task",
                 "detection", "--seed", "1", "--size", "32", "--project"])  # fmt: skip
    assert code == 0
    assert "wrote 6 detection images" in capsys.readouterr().out
    with Image.open(out / "datasets" / "3" / "synthetic_000000.png") as im:
        assert im.size == (32, 32)
    assert main(["dataset", "--out", str(out), "--id", "3", "--images", "6"]) == 1
    assert "pass --force" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args",
    [["--images", "0"], ["--classes", "9"], ["--size", "4"], ["--id", "../x"]],
)
def test_cli_rejects_bad_values(tmp_path, capsys, args):
    assert main(["dataset", "--out", str(tmp_path), *args]) == 2
    assert args[1] in capsys.readouterr().err
    assert not (tmp_path / "datasets").exists()
