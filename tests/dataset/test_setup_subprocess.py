"""setup.py run as the container runs it: a subprocess in an image-like WORKDIR using our
common/ files. The platform's stock setup.py runs unchanged; bad input gives one clear error
line, exit status != 0 and leaves everything outside DATASETS_ROOT untouched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.cvat import (
    DATA,
    backdate_links,
    link_identities,
    make_workspace,
    tag_image,
    task_xml,
    tree_snapshot,
    write_xml,
)
from trainkit.synthetic import write_cvat_dataset

YOLO_SETUP = """\
from config import finalize_config
from cvat_dataset import (as_yolo, create_directory_structure, create_test_images,
    create_test_labels, create_train_images, create_train_labels, get_cvat_dataset)


def _labels(labels_path, label_names, files_with_annotations):
    for path, lines in as_yolo(label_names, files_with_annotations).items():
        (labels_path / (path.stem + ".txt")).write_text("\\n".join(lines), encoding="utf-8")


if __name__ == "__main__":
    config, label_names, train_data, val_data = get_cvat_dataset()
    create_directory_structure()
    create_train_labels(_labels, train_data, label_names)
    create_test_labels(_labels, val_data, label_names)
    create_train_images(train_data)
    create_test_images(val_data)
    finalize_config(config)
"""


def _check_links(ws, split: str) -> list[Path]:
    links = sorted((ws.datasets / "images" / split).iterdir())
    assert links
    for link in links:
        assert link.is_symlink()
        assert link.resolve() == (ws.minio / "datasets" / "1" / link.name).resolve()
    return links


@pytest.mark.parametrize("project", [False, True], ids=["task", "project"])
def test_stock_setup_py_runs_unchanged_on_our_runtime(stock_workspace, project):
    ws = stock_workspace
    write_cvat_dataset(ws.minio, 1, 40, "classification", seed=3, project=project)
    proc = ws.run_setup()
    assert proc.returncode == 0, proc.stderr
    assert "40 images with file and annotations" in proc.stderr
    train, val = _check_links(ws, "train"), _check_links(ws, "val")
    assert (len(train), len(val)) == (32, 8)
    for split, links in (("train", train), ("val", val)):
        coco = json.loads((ws.datasets / "labels" / split / "labels.json").read_text())
        assert [c["name"] for c in coco["categories"]] == ["circle", "square", "triangle"]
        assert sorted(i["file_name"] for i in coco["images"]) == [p.name for p in links]
        assert len(coco["annotations"]) == len(links)
    finalized = json.loads((ws.path / "train_config.json").read_text())
    assert finalized["images-dir"] == "/datasets/images"  # presets merged by finalize_config


def test_rerun_gives_the_same_tree(stock_workspace):
    ws = stock_workspace
    write_cvat_dataset(ws.minio, 1, 30, "classification")
    assert ws.run_setup().returncode == 0
    backdate_links(ws.datasets)
    first = link_identities(ws.datasets)
    assert len(first) == 30
    tree = {k: (v[0], v[3]) for k, v in tree_snapshot(ws.datasets).items()}  # kinds, targets
    labels = {s: (ws.datasets / "labels" / s / "labels.json").read_text() for s in ("train", "val")}
    proc = ws.run_setup()
    assert proc.returncode == 0, proc.stderr
    # Every link kept as it was (inode, mtime, target), not deleted and re-created.
    assert link_identities(ws.datasets) == first
    assert {k: (v[0], v[3]) for k, v in tree_snapshot(ws.datasets).items()} == tree
    for split, text in labels.items():
        assert (ws.datasets / "labels" / split / "labels.json").read_text() == text


def test_yolo_setup_for_detection(tmp_path):
    ws = make_workspace(tmp_path, YOLO_SETUP)
    write_cvat_dataset(ws.minio, 1, 20, "detection", seed=1)
    proc = ws.run_setup()
    assert proc.returncode == 0, proc.stderr
    links = _check_links(ws, "train")
    for link in links:
        lines = (ws.datasets / "labels" / "train" / f"{link.stem}.txt").read_text().splitlines()
        assert 1 <= len(lines) <= 3
        for line in lines:
            cls, *coords = line.split()
            assert cls in {"0", "1", "2"}
            assert len(coords) == 4 and all(0 < float(c) <= 1 for c in coords), line


def test_names_with_spaces_and_unicode_and_duplicate_basenames(stock_workspace):
    ws = stock_workspace
    names = ["with space.jpg", "ünï 画像.jpg", "plain.jpg", "x.jpg"]
    dataset_dir = ws.minio / "datasets" / "1"
    dataset_dir.mkdir()
    for name in names:
        (dataset_dir / name).write_bytes(b"")
    images = "".join(tag_image(n, "ab"[i % 2], i) for i, n in enumerate(names))
    images += tag_image("other-task/x.jpg", "a", 9)  # second entry for x.jpg
    write_xml(dataset_dir / "annotations" / "annotations.xml", task_xml(["a", "b"], images))
    proc = ws.run_setup()
    assert proc.returncode == 0, proc.stderr
    assert "1 <image> entries repeating a basename (first kept)" in proc.stderr
    linked = {p.name for p in (ws.datasets / "images" / "train").iterdir()}
    linked |= {p.name for p in (ws.datasets / "images" / "val").iterdir()}
    assert linked == set(names)


# --- bad input ------------------------------------------------------------------------------

BOMB = (
    '<?xml version="1.0"?>\n<!DOCTYPE a [<!ENTITY l "lol"><!ENTITY l2 "&l;&l;&l;&l;&l;&l;">'
    '<!ENTITY l3 "&l2;&l2;&l2;&l2;&l2;&l2;">]>\n<annotations><x>&l3;</x></annotations>\n'
)
XXE = (
    '<?xml version="1.0"?>\n<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/hostname">]>\n'
    "<annotations><x>&x;</x></annotations>\n"
)


def _dataset(ws, xml: str | None, files=("a.jpg", "b.jpg", "c.jpg")) -> None:
    dataset_dir = ws.minio / "datasets" / "1"
    dataset_dir.mkdir(parents=True, exist_ok=True)
    for name in files:
        (dataset_dir / name).write_bytes(b"")
    if xml is not None:
        write_xml(dataset_dir / "annotations" / "annotations.xml", xml)


GOOD_XML = task_xml(["a", "b"], "".join(tag_image(n, "ab"[i % 2], i) for i, n in
                                        enumerate(["a.jpg", "b.jpg", "c.jpg"])))  # fmt: skip

CASES = {
    "billion-laughs": (lambda ws: _dataset(ws, BOMB), {}, ["not allowed", "annotations.xml"]),
    "external-entity": (lambda ws: _dataset(ws, XXE), {}, ["not allowed", "annotations.xml"]),
    "malformed": (
        lambda ws: _dataset(ws, GOOD_XML.replace("</meta>", "</mta>")),
        {},
        ["malformed XML at line 4, column"],
    ),
    "missing-dataset-id": (lambda ws: _dataset(ws, GOOD_XML), {"dataset_id": None}, ["DATASET_ID"]),
    "dataset-id-traversal": (
        lambda ws: _dataset(ws, GOOD_XML),
        {"dataset_id": "../datasets/1"},
        ["DATASET_ID='../datasets/1'", "not a plain directory name"],
    ),
    "missing-annotations": (lambda ws: _dataset(ws, None), {}, ["annotations.xml' not found"]),
    "empty-dataset": (
        lambda ws: _dataset(ws, GOOD_XML, files=()),
        {},
        ["0 images with file and annotations (0 files, 3 <image> entries)", "nothing to train"],
    ),
    "split-0.9-0.3": (
        lambda ws: _dataset(ws, GOOD_XML),
        {"config": {"train-split": 0.9, "test-split": 0.3}},
        ["'train-split' = 0.9 + 'test-split' = 0.3"],
    ),
    "unknown-label-empties-set": (
        lambda ws: _dataset(ws, task_xml(["a"], tag_image("a.jpg", "dgo"))),
        {},
        ["nothing to train on", "'dgo' x1"],
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_gives_one_clear_line_and_touches_nothing(tmp_path, case):
    prepare, opts, expected = CASES[case]
    ws = make_workspace(tmp_path, DATA / "stock_setup_classification.py", opts.get("config"))
    prepare(ws)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "user.txt").write_text("mine")
    before = {name: tree_snapshot(root) for name, root in _roots(ws, outside).items()}
    proc = ws.run_setup(opts.get("dataset_id", "1"))
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("dataset error:")]
    assert len(errors) == 1, proc.stderr
    for text in expected:
        assert text in errors[0], errors[0]
    after = {name: tree_snapshot(root) for name, root in _roots(ws, outside).items()}
    assert after == before


def _roots(ws, outside: Path) -> dict[str, Path]:
    return {"minio": ws.minio, "workspace": ws.path, "outside": outside}
