"""What real CVAT exports hold, through the example templates' setup.py as the container runs
it (issue 14's "Why"): every case gives the documented handling, or one error line, exit
status != 0 and nothing outside DATASETS_ROOT touched."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.support.cvat import REPO, make_workspace, tag_image, task_xml, tree_snapshot, write_xml
from trainkit_runtime import cvat_dataset as cd
from trainkit_runtime.dataset import DatasetError

SETUP = {
    "classification": REPO / "templates/Acme/Classification/TinyNet/docker/setup.py",
    "detection": REPO / "templates/Acme/Detection/TinyDet/docker/setup.py",  # YOLO
    "segmentation": REPO / "templates/Acme/Segmentation/TinySeg/docker/setup.py",
}
W, H = 40, 30


def image(name: str, body: str, i: int = 0, size: bool = True) -> str:
    dims = f' width="{W}" height="{H}"' if size else ""
    return f'<image id="{i}" name="{name}"{dims}>{body}</image>\n'


def box(label="a", xtl=2, ytl=3, xbr=12, ybr=13, extra="") -> str:
    return f'<box label="{label}" xtl="{xtl}" ytl="{ytl}" xbr="{xbr}" ybr="{ybr}"{extra}/>'


def mask_rle(rows: list[str]) -> str:
    """CVAT RLE of a small bitmap given as rows of '0'/'1' (row-major, background first)."""
    bits = "".join(rows)
    runs, current, count = [], "0", 0
    for bit in bits:
        if bit == current:
            count += 1
        else:
            runs.append(count)
            current, count = bit, 1
    runs.append(count)
    return ", ".join(map(str, runs))


def png(path: Path, size=(W, H)) -> Path:
    from PIL import Image

    Image.new("RGB", size, (10, 20, 30)).save(path)
    return path


class Setup:
    def __init__(self, tmp_path: Path, task: str):
        self.ws = make_workspace(tmp_path, SETUP[task])
        self.dir = self.ws.minio / "datasets" / "1"
        self.dir.mkdir(parents=True)
        self.out = tmp_path / "output"
        self.outside = tmp_path / "outside"
        self.outside.mkdir()
        (self.outside / "user.txt").write_text("mine")

    def files(self, *names: str, real: bool = False) -> None:
        for name in names:
            if real:
                png(self.dir / name)
            else:
                (self.dir / name).write_bytes(b"")

    def xml(self, labels, images: str) -> None:
        write_xml(self.dir / "annotations" / "annotations.xml", task_xml(labels, images))

    def _snapshot(self) -> dict:
        roots = {"minio": self.ws.minio, "outside": self.outside}
        return {k: tree_snapshot(v) for k, v in roots.items()}

    def run(self):
        self.before = self._snapshot()
        proc = self.ws.run_setup(OUTPUT_DIR=str(self.out))
        assert "Traceback" not in proc.stderr, proc.stderr
        assert self._snapshot() == self.before  # the dataset and user files: untouched
        return proc

    def fails(self, *expected: str) -> str:
        proc = self.run()
        assert proc.returncode != 0
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error: setup:")]
        assert len(errors) == 1, proc.stderr
        for text in expected:
            assert text in errors[0], errors[0]
        assert "\n" not in json.loads((self.out / "failure").read_text())["message"]
        return errors[0]

    def coco(self, split: str) -> dict:
        text = (self.ws.datasets / "labels" / split / "labels.json").read_text()
        return json.loads(text)  # json.loads accepts NaN: check it separately

    def all_annotations(self) -> list[dict]:
        return [a for split in ("train", "val") for a in self.coco(split)["annotations"]]


def _names(n: int) -> list[str]:
    return [f"img{i:02d}.png" for i in range(n)]


# --- masks, rotated boxes, sizes, video -----------------------------------------------------


def test_masks_become_segmentation_annotations(tmp_path):
    s = Setup(tmp_path, "segmentation")
    names = _names(5)
    s.files(*names)
    rle = mask_rle(["0110", "1111", "0110"])
    body = f'<mask label="a" source="manual" occluded="0" rle="{rle}" left="5" top="6" ' \
           f'width="4" height="3" z_order="0"></mask>'  # fmt: skip
    s.xml(["a"], "".join(image(n, body, i) for i, n in enumerate(names)))
    proc = s.run()
    assert proc.returncode == 0, proc.stderr
    anns = s.all_annotations()
    assert len(anns) == 5  # none dropped
    for ann in anns:
        assert ann["segmentation"]["size"] == [H, W]
        assert ann["area"] == 8 and ann["bbox"] == [5, 6, 4, 3]
    assert "mask → COCO RLE" in proc.stderr


def test_rotated_boxes_give_the_enclosing_box(tmp_path):
    s = Setup(tmp_path, "detection")
    names = _names(5)
    s.files(*names)
    s.xml(["a"], "".join(image(n, box(xtl=10, ytl=10, xbr=30, ybr=20, extra=' rotation="90"'), i)
                         for i, n in enumerate(names)))  # fmt: skip
    assert s.run().returncode == 0
    # 20x10 about (20, 15) turned 90°: 10x20 at (15, 5)
    line = (s.ws.datasets / "labels" / "train" / "img00.txt").read_text().split()
    assert [float(v) for v in line[1:]] == pytest.approx([20 / W, 15 / H, 10 / W, 20 / H])


def test_image_without_size_reads_it_from_the_file_header(tmp_path):
    s = Setup(tmp_path, "detection")
    names = _names(5)
    s.files(*names, real=True)
    s.xml(["a"], "".join(image(n, box(), i, size=False) for i, n in enumerate(names)))
    proc = s.run()
    assert proc.returncode == 0, proc.stderr
    assert "sizes of 5 images read from their files" in proc.stderr


def test_image_without_size_and_unreadable_file_is_one_error_naming_it(tmp_path):
    s = Setup(tmp_path, "detection")
    s.files("a.png", "b.png")  # empty files: no header
    s.xml(["a"], image("a.png", box(), 0, size=False) + image("b.png", box(), 1))
    s.fails("image 'a.png' has no width/height", "cannot be read as an image")


def test_video_export_without_frames_is_one_error_naming_the_format(tmp_path):
    s = Setup(tmp_path, "detection")
    s.files("clip_a.jpg", "clip_b.jpg")
    track = '<track id="0" label="a"><box frame="0" outside="0" keyframe="1" xtl="1" ' \
            'ytl="1" xbr="5" ybr="5"/><box frame="1" outside="1" keyframe="1" xtl="1" ' \
            'ytl="1" xbr="5" ybr="5"/></track>'  # fmt: skip
    s.xml(["a"], track)
    s.fails("CVAT for video 1.1 export", "frame_000000.png", "CVAT for images 1.1")


def test_video_export_with_frames_trains_on_them(tmp_path):
    s = Setup(tmp_path, "detection")
    names = [f"frame_{i:06d}.PNG" for i in range(6)]
    s.files(*names)
    tracks = "".join(
        f'<track id="{i}" label="a"><box frame="{i}" outside="0" keyframe="1" xtl="1" ytl="2" '
        f'xbr="9" ybr="8"/><box frame="{i + 1}" outside="1" keyframe="1" xtl="1" ytl="2" '
        'xbr="9" ybr="8"/></track>'
        for i in range(6)
    )
    xml = task_xml(["a"], tracks).replace(
        "</task>", f"<original_size><width>{W}</width><height>{H}</height></original_size></task>"
    )
    write_xml(s.dir / "annotations" / "annotations.xml", xml)
    proc = s.run()
    assert proc.returncode == 0, proc.stderr
    assert (
        "CVAT for video: 6 tracks on 6 frames (6 shapes outside the frame skipped)" in proc.stderr
    )
    labelled = sorted(p.name for p in (s.ws.datasets / "labels" / "train").glob("*.txt"))
    labelled += sorted(p.name for p in (s.ws.datasets / "labels" / "val").glob("*.txt"))
    assert len(labelled) == 6
    for path in (s.ws.datasets / "labels").rglob("frame_*.txt"):
        assert len(path.read_text().splitlines()) == 1  # the outside copy is not a box


# --- task/shape mismatch, COCO for readers --------------------------------------------------


@pytest.mark.parametrize("task", ["detection", "segmentation"])
def test_task_without_its_shapes_is_one_error_counting_what_is_there(tmp_path, task):
    s = Setup(tmp_path, task)
    names = _names(5)
    s.files(*names)
    body = '<tag label="a"/>' + (box() if task == "segmentation" else "")
    s.xml(["a"], "".join(image(n, body, i) for i, n in enumerate(names)))
    needed = "<box>" if task == "detection" else "<polygon>, <ellipse>, <mask>"
    s.fails(f"{task} needs", needed, "<tag>")


def test_coco_labels_load_in_pycocotools_for_every_task(tmp_path):
    from pycocotools.coco import COCO

    from trainkit.synthetic import write_cvat_dataset

    for task in ("classification", "detection", "segmentation"):
        ws = make_workspace(tmp_path / task, SETUP[task])
        write_cvat_dataset(ws.minio, 1, 20, task, seed=4, n_classes=4, shapes="mixed")
        proc = ws.run_setup(OUTPUT_DIR=str(tmp_path / task / "out"))
        assert proc.returncode == 0, proc.stderr
        if task == "detection":
            continue  # YOLO in TinyDet; COCO detection: test_coco_detection_for_readers
        path = ws.datasets / "labels" / "train" / "labels.json"
        api = COCO(str(path))
        for ann in api.loadAnns(api.getAnnIds()):
            assert {"id", "image_id", "category_id", "bbox", "area", "iscrowd"} <= set(ann)
            if "segmentation" in ann:
                assert api.annToMask(ann).sum() > 0


def test_coco_detection_for_readers(tmp_path):
    from pycocotools.coco import COCO

    from trainkit.synthetic import write_cvat_dataset

    dataset_dir = write_cvat_dataset(tmp_path, 1, 12, "detection", seed=1, n_classes=4)
    files = sorted(dataset_dir.glob("*.png"))
    names, data, _ = cd.match_files_to_annotations(files, dataset_dir / cd.ANNOTATIONS_SUBFILEPATH)
    cd.coco_labels_writer("detection")(tmp_path, names, data)
    api = COCO(str(tmp_path / "labels.json"))
    for ann in api.loadAnns(api.getAnnIds()):
        mask = api.annToMask(ann)  # detection annotations have segmentation now
        _x, _y, w, h = ann["bbox"]
        assert mask.sum() == pytest.approx(w * h, rel=0.35)


# --- tags, skeletons ------------------------------------------------------------------------


def test_images_with_several_tags_are_reported_and_the_first_is_the_class(tmp_path):
    s = Setup(tmp_path, "classification")
    names = _names(8)
    s.files(*names)
    images = "".join(
        image(n, f'<tag label="{"ab"[i % 2]}"/>' + ('<tag label="c"/>' if i < 3 else ""), i)
        for i, n in enumerate(names)
    )
    s.xml(["a", "b", "c"], images)
    proc = s.run()
    assert proc.returncode == 0, proc.stderr
    assert "images with several tags (the first is the class)" in proc.stderr
    assert "split stratified by class" in proc.stderr  # by the first tag, not silently off
    coco = s.coco("train")
    first = {}
    for ann in sorted(coco["annotations"], key=lambda a: a["id"]):
        first.setdefault(ann["image_id"], ann["category_id"])
    assert 3 not in first.values()  # 'c' is never the first tag


def test_a_skeleton_label_is_not_a_class(tmp_path):
    s = Setup(tmp_path, "detection")
    names = _names(5)
    s.files(*names)
    labels = (
        "<label><name>a</name></label><label><name>body</name><type>skeleton</type>"
        "</label><label><name>head</name><type>points</type><parent>body</parent></label>"
    )
    skeleton = '<skeleton label="body"><points label="head" points="1,1"/></skeleton>'
    xml = task_xml(["x"], "".join(image(n, box() + skeleton, i) for i, n in enumerate(names)))
    xml = xml.replace("<label><name>x</name><color>#000000</color><type>any</type>"
                      "<attributes></attributes></label>", labels)  # fmt: skip
    write_xml(s.dir / "annotations" / "annotations.xml", xml)
    proc = s.run()
    assert proc.returncode == 0, proc.stderr
    assert (s.ws.datasets / "labels" / "train" / "classes.names").read_text() == "a\n"
    assert json.loads((s.ws.path / "train_config.json").read_text())["num-classes"] == 1
    assert "skeleton labels are not classes ('body')" in proc.stderr
    assert "not used by detection: 4 skeleton" in proc.stderr  # the train split's


# --- degenerate numbers ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        (box(xtl="nan"), ["image 'img00.png'", "<box> #1 (label 'a')", "xtl='nan'", "finite"]),
        (box(ybr="inf"), ["<box> #1", "ybr='inf'"]),
        (box(xbr="1e308"), ["xbr=1e+308 is out of range"]),
        (box(extra=' rotation="720"'), ["rotation=720 is out of range"]),
        ('<polygon label="a" points="1,1;nan,3;4,4"/>', ["<polygon> #1", "not finite"]),
        ('<ellipse label="a" cx="5" cy="5" rx="inf" ry="2"/>', ["<ellipse> #1", "rx='inf'"]),
        ('<mask label="a" rle="1, 2" left="38" top="0" width="3" height="1"/>',
         ["<mask> #1", "out of range", "inside the 40x30 image"]),
        ('<mask label="a" rle="1, 5" left="0" top="0" width="3" height="1"/>',
         ["<mask> #1", "rle covers 6 pixels"]),
    ],
    ids=["nan", "inf", "huge", "rotation", "polygon-nan", "ellipse-inf", "mask-outside",
         "mask-rle"],
)  # fmt: skip
def test_bad_numbers_are_one_error_naming_image_shape_and_attribute(tmp_path, shape, expected):
    s = Setup(tmp_path, "segmentation")
    names = _names(4)
    s.files(*names)
    good = '<polygon label="a" points="1,1;9,1;9,9"/>'
    s.xml(["a"], "".join(image(n, shape if i == 0 else good, i) for i, n in enumerate(names)))
    s.fails(*expected)
    labels = s.ws.datasets / "labels"
    for path in labels.rglob("labels.json"):  # nothing half-written, never a NaN
        text = path.read_text()
        assert "NaN" not in text and "Infinity" not in text


@pytest.mark.parametrize("width", ["0", "-5", "nan", "1e9", "abc"])
def test_zero_or_bad_image_size_is_one_error_not_a_division_by_zero(tmp_path, width):
    s = Setup(tmp_path, "detection")
    names = _names(4)
    s.files(*names)
    bad = f'<image id="0" name="img00.png" width="{width}" height="30">{box()}</image>\n'
    s.xml(["a"], bad + "".join(image(n, box(), i) for i, n in enumerate(names[1:], 1)))
    error = s.fails("image 'img00.png'", f"width='{width}'")
    assert "ZeroDivisionError" not in error


def test_two_files_with_one_stem_are_one_error_naming_both(tmp_path):
    s = Setup(tmp_path, "detection")
    names = ["a.png", "a.jpg", *_names(8)]
    s.files(*names)
    s.xml(["a"], "".join(image(n, box(), i) for i, n in enumerate(names)))
    config = {"train-split": 0.9, "test-split": 0.1, "split-seed": 1}
    (s.ws.path / "train_config.json").write_text(json.dumps(config))
    # whichever split holds both: find a seed where they share one
    for seed in range(40):
        config["split-seed"] = seed
        (s.ws.path / "train_config.json").write_text(json.dumps(config))
        _, _, train, val = _split(s, seed)
        if {"a.png", "a.jpg"} <= train or {"a.png", "a.jpg"} <= val:
            break
    s.fails("images 'a.png' and 'a.jpg'", "share the label file 'a.txt'")


def _split(s: Setup, seed: int):
    names, data, _ = cd.match_files_to_annotations(
        sorted(p for p in s.dir.iterdir() if p.is_file()), s.dir / cd.ANNOTATIONS_SUBFILEPATH
    )
    train, val = cd.split_dataset(data, 0.9, 0.1, seed=seed)
    return names, data, {p.name for p in train}, {p.name for p in val}


@pytest.mark.parametrize(
    "name",
    ["two\nlines", "tab\there", "next\x85line", "para\u2029sep"],
    ids=["newline", "tab", "NEL", "paragraph-separator"],
)  # XML 1.0 cannot hold other C0 controls at all (the parser refuses them)
def test_label_names_with_control_characters_are_one_error(tmp_path, name):
    s = Setup(tmp_path, "detection")
    s.files("a.png")
    attribute = name.replace("\n", "&#10;").replace("\t", "&#9;")
    s.xml([name], image("a.png", box(label=attribute)))
    s.fails("contains a control character", "rename the label in CVAT")


def test_many_labels_parse_in_linear_time(tmp_path):
    labels = [f"label{i}" for i in range(40_000)]
    path = write_xml(tmp_path / "a.xml", task_xml(labels, tag_image("x.jpg", "label1")))
    started = time.perf_counter()
    info = next(v for k, v in cd.iter_cvat_annotations(path) if k == "labels")
    elapsed = time.perf_counter() - started
    assert info.names == labels
    # a list lookup per label is 40k * 20k comparisons on average (~10 s here); a set is ~0.2 s
    assert elapsed < 3.0, elapsed


def test_as_coco_never_writes_a_non_finite_number():
    image_dict = {"@width": "10", "@height": "10", "box": {"@label": "a", "@xtl": "NaN",
                  "@ytl": "0", "@xbr": "5", "@ybr": "5"}}  # fmt: skip
    with pytest.raises(DatasetError, match="xtl='NaN' is not a finite number"):
        cd.as_coco(["a"], {Path("x.png"): image_dict}, dataset_type="detection")


# --- end to end: the examples train on every shape kind -------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("task", "example", "video"),
    [("segmentation", "Acme/Segmentation/TinySeg", False),
     ("detection", "Acme/Detection/TinyDet", True)],
    ids=["segmentation-masks-ellipses-rotated", "detection-video"],
)  # fmt: skip
def test_examples_train_on_every_shape_kind(tmp_path, task, example, video):
    from tests.support.repo import EXAMPLES_DIR
    from tests.template.test_template_run import trainkit_run
    from trainkit.synthetic import write_cvat_dataset

    minio = tmp_path / "minio"
    write_cvat_dataset(minio, 1, 32, task, seed=0, n_classes=4, shapes="mixed", video=video)
    values = {"epochs": 1, "max-steps": 3, "workers": 0}
    proc = trainkit_run(EXAMPLES_DIR / example, minio, tmp_path / "run", values)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    score = "mIoU" if task == "segmentation" else "mAP@0.5"
    assert f"{score}: " in proc.stdout + proc.stderr
    if task == "segmentation":
        labels = json.loads((tmp_path / "run/datasets/labels/train/labels.json").read_text())
        assert any(isinstance(a["segmentation"], dict) for a in labels["annotations"])
