"""The cvat_dataset API setup.py files call: matching, split, symlinks, labels, COCO, YOLO."""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from pathlib import Path

import pytest

from tests.support.cvat import backdate_links, link_identities, tag_image, task_xml, tree_snapshot
from trainkit_runtime import cvat_dataset as cd
from trainkit_runtime import dataset
from trainkit_runtime.dataset import DatasetError


def _classification(runtime, n_per_class: dict[str, int], labels=None) -> None:
    images, names, i = "", [], 0
    for label, n in n_per_class.items():
        for _ in range(n):
            name = f"img_{i:04d}.jpg"
            images += tag_image(name, label, i)
            names.append(name)
            i += 1
    runtime.add_files(*names)
    runtime.write_annotations(task_xml(labels or list(n_per_class), images))


# --- get_cvat_dataset -----------------------------------------------------------------------


def test_get_cvat_dataset_returns_config_labels_and_split(runtime):
    _classification(runtime, {"cat": 8, "dog": 8}, labels=["dog", "cat"])
    config, labels, train, val = cd.get_cvat_dataset()
    assert config == {"train-split": 0.75, "test-split": 0.25}
    assert labels == ["dog", "cat"]  # <labels> order, not alphabetical or set order
    assert (len(train), len(val)) == (12, 4)
    assert not set(train) & set(val)
    for path, image in {**train, **val}.items():
        assert isinstance(path, Path) and path.parent == runtime.dataset_dir
        assert image["@name"] == path.name
        assert image["tag"]["@label"] in {"cat", "dog"}
    # stratified: each class keeps its share in validation
    assert Counter(i["tag"]["@label"] for i in val.values()) == {"cat": 2, "dog": 2}


def test_split_is_deterministic_and_seeded(runtime):
    _classification(runtime, {"a": 30, "b": 11})
    first = cd.get_cvat_dataset()
    second = cd.get_cvat_dataset()
    assert list(first[2]) == list(second[2]) and list(first[3]) == list(second[3])
    runtime.write_config({"train-split": 0.75, "test-split": 0.25, "split-seed": 7})
    third = cd.get_cvat_dataset()
    assert set(third[3]) != set(first[3])


def test_missing_split_keys_use_defaults_with_a_log_line(runtime, caplog):
    _classification(runtime, {"a": 5, "b": 5})
    runtime.write_config({})
    with caplog.at_level(logging.INFO, logger="cvat_dataset"):
        _, _, train, val = cd.get_cvat_dataset()
    assert (len(train), len(val)) == (8, 2)
    assert "using the defaults 0.8/0.2" in caplog.text


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"train-split": 0.9, "test-split": 0.3}, "'train-split' = 0.9 + 'test-split' = 0.3"),
        ({"train-split": 0, "test-split": 0.2}, "'train-split' = 0.0 must be between 0 and 1"),
        ({"train-split": 0.8, "test-split": 1}, "'test-split' = 1.0 must be between 0 and 1"),
        ({"train-split": 80, "test-split": 20}, "'train-split' = 80.0 must be between"),
        ({"train-split": -0.1, "test-split": 0.2}, "'train-split' = -0.1"),
        ({"train-split": "abc", "test-split": 0.2}, "'train-split' = 'abc' is not a number"),
        ({"train-split": True, "test-split": 0.2}, "'train-split' = True is not a number"),
        ({"split-seed": "x"}, "'split-seed' = 'x' is not an integer"),
    ],
)
def test_bad_split_values_are_errors_naming_them(runtime, config, message):
    _classification(runtime, {"a": 5, "b": 5})
    runtime.write_config(config)
    with pytest.raises(DatasetError) as err:
        cd.get_cvat_dataset()
    assert message in str(err.value)
    assert "train_config.json" in str(err.value)


def test_split_sizes():
    assert cd.get_split_sizes({"train-split": 0.7}) == (0.7, 0.3)
    assert cd.get_split_sizes({"test-split": 0.1}) == (0.9, 0.1)
    assert cd.get_split_sizes({"train-split": 0.5, "test-split": 0.5}) == (0.5, 0.5)
    assert cd.get_split_sizes({"train-split": "0.6", "test-split": 0.4}) == (0.6, 0.4)
    assert cd.get_split_sizes({"train-split": 0.7, "test-split": 0.30000001}) == (0.7, 0.30000001)


def test_split_dataset_counts_and_partial_use():
    data = {Path(f"{i}.jpg"): {"@name": f"{i}.jpg", "box": {}} for i in range(10)}
    train, test = cd.split_dataset(data, 0.7, 0.3)
    assert (len(train), len(test)) == (7, 3)  # 0.3 * 10 is 3, not ceil(3.0000000000000004)
    train, test = cd.split_dataset(data, 0.5, 0.2)
    assert (len(train), len(test)) == (5, 2)
    assert list(train) == sorted(train, key=lambda p: int(p.stem))  # input order kept
    with pytest.raises(DatasetError, match="1 usable images cannot be split"):
        cd.split_dataset({Path("a.jpg"): {}}, 0.8, 0.2)


def test_stratification_only_when_every_class_has_two_images():
    def tagged(label):
        return {"tag": {"@label": label}}

    data = {Path(f"{i}.jpg"): tagged("a" if i < 18 else "b") for i in range(20)}
    _, test = cd.split_dataset(data, 0.5, 0.5)
    assert Counter(v["tag"]["@label"] for v in test.values()) == {"a": 9, "b": 1}
    data[Path("19.jpg")] = tagged("c")  # class c has one image: plain seeded split
    train, test = cd.split_dataset(data, 0.5, 0.5)
    assert len(train) + len(test) == 20


# --- matching and reporting -----------------------------------------------------------------


def test_unknown_labels_are_dropped_counted_and_reported_once(runtime, caplog):
    images = (
        tag_image("a.jpg", "cat", 0)
        + tag_image("b.jpg", "dgo", 1)
        + '<image id="2" name="c.jpg" width="8" height="8">'
        '<box label="cat" xtl="0" ytl="0" xbr="4" ybr="4"/>'
        '<box label="dgo" xtl="0" ytl="0" xbr="4" ybr="4"/></image>\n'
    )
    runtime.add_files("a.jpg", "b.jpg", "c.jpg")
    runtime.write_annotations(task_xml(["cat"], images))
    with caplog.at_level(logging.INFO, logger="cvat_dataset"):
        labels, data, report = cd.load_cvat_dataset()
    assert labels == ["cat"]
    assert [p.name for p in data] == ["a.jpg", "c.jpg"]
    assert data[runtime.dataset_dir / "c.jpg"]["box"] == {
        "@label": "cat",
        "@xtl": "0",
        "@ytl": "0",
        "@xbr": "4",
        "@ybr": "4",
    }  # one box left: a dict, as xmltodict gives for a single child
    assert report.unknown_labels == {"dgo": 2}
    summary = [r.message for r in caplog.records if "<image> entries" in r.message]
    assert len(summary) == 1
    assert "2 shapes with labels not in <labels> dropped ('dgo' x2)" in summary[0]
    assert "1 files without annotations" in summary[0]


def test_unknown_label_emptying_the_dataset_is_an_error(runtime):
    runtime.add_files("a.jpg")
    runtime.write_annotations(task_xml(["cat"], tag_image("a.jpg", "dgo")))
    with pytest.raises(DatasetError, match="nothing to train on") as err:
        cd.get_cvat_dataset()
    assert "'dgo' x1" in str(err.value)


def test_duplicate_basenames_files_without_annotations_and_missing_files(runtime, caplog):
    images = (
        tag_image("task1/1.jpg", "a", 0)
        + tag_image("task2/1.jpg", "b", 1)
        + tag_image("gone.jpg", "a", 2)
        + '<image id="3" name="2.jpg" width="8" height="8"></image>\n'
    )
    runtime.add_files("1.jpg", "2.jpg", "3.jpg")
    runtime.write_annotations(task_xml(["a", "b"], images))
    with caplog.at_level(logging.INFO, logger="cvat_dataset"):
        _, data, report = cd.load_cvat_dataset()
    assert list(data) == [runtime.dataset_dir / "1.jpg"]
    assert data[runtime.dataset_dir / "1.jpg"]["tag"]["@label"] == "a"  # first entry wins
    assert report.duplicate_basenames == 1
    assert report.images_without_file == 1
    assert report.files_without_annotations == 2  # 2.jpg (no shapes) and 3.jpg (no entry)
    text = caplog.text
    assert "1 <image> entries repeating a basename" in text
    assert "1 annotated images without a file" in text
    assert "2 files without annotations" in text


def test_names_with_spaces_and_unicode(runtime):
    names = ["with space.jpg", "ünïcödé 画像.png", "quote'.jpg"]
    runtime.add_files(*names)
    images = "".join(
        tag_image(n.replace("'", "&apos;"), "a" if i % 2 else "b", i) for i, n in enumerate(names)
    )
    runtime.write_annotations(task_xml(["a", "b"], images))
    _, data, _ = cd.load_cvat_dataset()
    assert sorted(p.name for p in data) == sorted(names)


def test_no_labels_declared_is_an_error(runtime):
    runtime.add_files("a.jpg")
    runtime.write_annotations(task_xml([], tag_image("a.jpg", "x")))
    with pytest.raises(DatasetError, match="no labels declared"):
        cd.load_cvat_dataset()


def test_empty_dataset_dir_is_an_error(runtime):
    runtime.dataset_dir.mkdir(parents=True)
    runtime.write_annotations(task_xml(["a"], tag_image("a.jpg", "a")))
    with pytest.raises(DatasetError, match=r"0 images with file and annotations \(0 files"):
        cd.get_cvat_dataset()


def test_find_annotations_for_files_compat():
    files = [Path("/m/1.jpg"), Path("/m/2.jpg")]
    annotations = [
        {"@name": "x/1.jpg", "tag": {"@label": "a"}},
        {"@name": "2.jpg"},
        {"@name": "3.jpg", "tag": {"@label": "a"}},
    ]
    assert list(cd.find_annotations_for_files(files, annotations)) == [Path("/m/1.jpg")]
    with pytest.raises(DatasetError, match="annotations missing for 1 files"):
        cd.find_annotations_for_files(files, annotations, strict=True)


def test_get_image_annotations_accepts_dict_list_and_absent():
    assert cd.get_image_annotations({"box": {"@label": "a"}}, "box") == [{"@label": "a"}]
    assert len(cd.get_image_annotations({"box": [{"@label": "a"}, {"@label": "b"}]}, "box")) == 2
    assert cd.get_image_annotations({}, "box") == []
    assert cd.get_image_annotations({"box": None}, "box") == []


# --- directory structure, symlinks, labels --------------------------------------------------


def _setup(runtime, labels_fn=None):
    _config, labels, train, val = cd.get_cvat_dataset()
    cd.create_directory_structure()
    fn = labels_fn or cd.coco_labels_writer("classification")
    cd.create_train_labels(fn, train, labels)
    cd.create_test_labels(fn, val, labels)
    cd.create_train_images(train)
    cd.create_test_images(val)
    return labels, train, val


def test_directory_structure_and_data_dirs(runtime):
    cd.create_directory_structure()
    assert set(dataset.DATA_DIRS) == {"images_train", "images_val", "labels_train", "labels_val"}
    assert dataset.DATA_DIRS["images_train"] == runtime.datasets / "images" / "train"
    assert all(p.is_dir() for p in dataset.DATA_DIRS.values())


def test_full_setup_symlinks_resolve_and_labels_are_right(runtime):
    _classification(runtime, {"cat": 6, "dog": 6})
    labels, train, val = _setup(runtime)
    for split, data in (("train", train), ("val", val)):
        links = sorted((runtime.datasets / "images" / split).iterdir())
        assert [p.name for p in links] == sorted(p.name for p in data)
        assert all(p.is_symlink() and p.resolve() == (runtime.dataset_dir / p.name) for p in links)
        coco = json.loads((runtime.datasets / "labels" / split / "labels.json").read_text())
        assert coco["categories"] == [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]
        by_file = {i["id"]: i["file_name"] for i in coco["images"]}
        for ann in coco["annotations"]:
            image = data[runtime.dataset_dir / by_file[ann["image_id"]]]
            assert labels[ann["category_id"] - 1] == image["tag"]["@label"]


def test_rerun_is_idempotent_and_never_touches_outside(runtime, tmp_path):
    _classification(runtime, {"cat": 6, "dog": 6})
    outside = tmp_path / "outside"
    outside.mkdir()
    user_file = outside / "precious.jpg"
    user_file.write_text("keep me")
    _setup(runtime)
    train_dir = runtime.datasets / "images" / "train"
    # leftovers of an older run: a stale link to a user file, a stale plain file, a sub-dir
    (train_dir / "stale.jpg").symlink_to(user_file)
    (train_dir / "old.txt").write_text("x")
    (train_dir / "keepdir").mkdir()
    (runtime.datasets / "labels" / "train" / "stale.txt").write_text("x")
    backdate_links(runtime.datasets)
    first = link_identities(runtime.datasets)
    minio_before = tree_snapshot(runtime.minio)
    _setup(runtime)
    assert user_file.read_text() == "keep me"
    assert not (train_dir / "stale.jpg").exists() and not (train_dir / "old.txt").exists()
    assert (train_dir / "keepdir").is_dir()
    assert not (runtime.datasets / "labels" / "train" / "stale.txt").exists()
    # The correct links are kept as they are (same inode, same mtime), not re-created; only
    # the stale link is gone.
    del first[str(Path("images", "train", "stale.jpg"))]
    assert len(first) == 12
    assert link_identities(runtime.datasets) == first
    assert tree_snapshot(runtime.minio) == minio_before


def test_images_dir_resolving_outside_datasets_root_is_refused(runtime, tmp_path):
    _classification(runtime, {"cat": 3, "dog": 3})
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "user.jpg").write_text("mine")
    (runtime.datasets / "images").mkdir()
    (runtime.datasets / "images" / "train").symlink_to(outside, target_is_directory=True)
    with pytest.raises(DatasetError, match="outside DATASETS_ROOT"):
        _setup(runtime)
    assert [p.name for p in outside.iterdir()] == ["user.jpg"]


def test_create_images_replaces_changed_targets(runtime):
    target_dir = runtime.datasets / "images" / "train"
    target_dir.mkdir(parents=True)
    a, b = runtime.add_files("a.jpg", "b.jpg")
    cd.create_images(target_dir, {a: {}, b: {}})
    other = runtime.minio / "datasets" / "2"
    other.mkdir()
    (other / "a.jpg").write_bytes(b"")
    cd.create_images(target_dir, {other / "a.jpg": {}})
    assert [p.name for p in target_dir.iterdir()] == ["a.jpg"]
    assert os.readlink(target_dir / "a.jpg") == str(other / "a.jpg")


# --- label formats --------------------------------------------------------------------------

IMAGE = {
    "@name": "x.jpg",
    "@width": "100",
    "@height": "50",
    "tag": {"@label": "b"},
    "box": [
        {"@label": "a", "@xtl": "10", "@ytl": "5", "@xbr": "30", "@ybr": "25"},
        {"@label": "b", "@xtl": "-10", "@ytl": "40", "@xbr": "20", "@ybr": "60"},
    ],
    "polygon": {"@label": "b", "@points": "0,0;10,0;10,10;0,10"},
}
FILES = {
    Path("/m/x.jpg"): IMAGE,
    Path("/m/y.jpg"): {"@name": "y.jpg", "@width": "8", "@height": "8"},
}


def test_as_coco_classification_detection_segmentation():
    cls = cd.as_coco(["a", "b"], FILES, dataset_type="classification")
    assert cls["categories"] == [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
    assert cls["images"] == [{"id": 1, "file_name": "x.jpg", "height": 50, "width": 100}]
    # a tag: the whole image as bbox, so every annotation has bbox/area/iscrowd
    assert cls["annotations"] == [
        {"id": 1, "image_id": 1, "category_id": 2, "area": 5000.0,
         "bbox": [0.0, 0.0, 100.0, 50.0], "iscrowd": 0}
    ]  # fmt: skip

    det = cd.as_coco(["a", "b"], FILES, dataset_type="detection")
    # boxes, and the polygon's enclosing box
    assert [a["bbox"] for a in det["annotations"]] == [
        [10, 5, 20, 20], [-10, 40, 30, 20], [0, 0, 10, 10]
    ]  # fmt: skip
    assert [a["category_id"] for a in det["annotations"]] == [1, 2, 2]
    assert det["annotations"][0]["area"] == 400
    assert det["annotations"][0]["segmentation"] == [[10, 5, 30, 5, 30, 25, 10, 25]]

    seg = cd.as_coco(["a", "b"], FILES)  # default: segmentation; boxes become rectangles
    polygon = seg["annotations"][-1]
    assert polygon["segmentation"] == [[0, 0, 10, 0, 10, 10, 0, 10]]
    assert polygon["bbox"] == [0, 0, 10, 10]
    assert polygon["area"] == 100
    assert polygon["iscrowd"] == 0
    assert len(seg["annotations"]) == 3
    json.dumps(seg, allow_nan=False)


def test_as_coco_classification_falls_back_to_boxes_and_rejects_unknown_type():
    image = {"@width": "8", "@height": "8", "box": {"@label": "a", "@xtl": "0", "@ytl": "0",
                                                    "@xbr": "2", "@ybr": "2"}}  # fmt: skip
    coco = cd.as_coco(["a"], {Path("z.jpg"): image}, dataset_type="classification")
    assert coco["annotations"][0]["category_id"] == 1
    with pytest.raises(DatasetError, match="'keypoints' is not one of"):
        cd.as_coco(["a"], {}, dataset_type="keypoints")


def test_polygon_area_is_the_shoelace_area():
    assert cd.polygon_area([(0, 0), (4, 0), (4, 3)]) == 6
    assert cd.polygon_area([(0, 0), (0, 3), (4, 0)]) == 6  # orientation does not matter
    assert cd.polygon_area(cd.parse_points("0,0;2,0;2,2;1,1;0,2")) == 3


def test_as_yolo_normalised_clipped_and_background_images():
    labels = cd.as_yolo(["a", "b"], FILES)
    assert labels[Path("/m/x.jpg")] == [
        "0 0.200000 0.300000 0.200000 0.400000",
        "1 0.100000 0.900000 0.200000 0.200000",  # clipped to [0, 1]
        "1 0.050000 0.100000 0.100000 0.200000",  # the polygon's enclosing box
    ]
    assert labels[Path("/m/y.jpg")] == []
    for line in labels[Path("/m/x.jpg")]:
        assert all(0 <= float(v) <= 1 for v in line.split()[1:])


def test_write_yolo_labels(tmp_path):
    cd.write_yolo_labels(tmp_path, ["a", "b"], FILES)
    assert (tmp_path / "classes.txt").read_text() == "a\nb\n"
    assert (tmp_path / "x.txt").read_text().count("\n") == 3
    assert (tmp_path / "y.txt").read_text() == ""
