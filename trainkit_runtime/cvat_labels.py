"""Label files from CVAT `<image>` dicts: COCO for each task, YOLO for detection.

`as_coco` and `as_yolo` are the platform's names (cvat_dataset re-exports them); every shape
kind of CVAT for images 1.1 is handled (cvat_shapes.py has the geometry):

- classification: `<tag>`s (an image without tags: its shapes' labels, as the platform's
  version reads boxes); one annotation per tag, bbox = the whole image. The image's class is
  its FIRST tag (all are written; images with several are counted and logged).
- detection: `<box>` (rotated too), `<polygon>`, `<ellipse>`, `<mask>`; bbox = the enclosing
  axis-aligned box, segmentation = the outline (the rotated rectangle, the polygon, the
  ellipse as a polygon) or the mask's COCO RLE.
- segmentation: `<polygon>`, `<mask>`, `<ellipse>`, `<box>`; polygons (ellipses as polygons,
  boxes as their rectangle, rotated when rotated), masks as COCO uncompressed RLE
  (`{"counts": [...], "size": [h, w]}`); area and bbox from the geometry (a mask's from its
  pixels).

`<polyline>`, `<points>`, `<skeleton>`, `<cuboid>` (and tags outside classification) are not
used by any task: counted and reported, never an error. Every COCO annotation has `id`,
`image_id`, `category_id`, `bbox`, `area`, `iscrowd` and, where there is geometry,
`segmentation`; tags get the whole image as bbox. `attributes` holds CVAT's `occluded`,
`z_order`, `rotation`, `track_id` and the shape's own `<attribute>`s ("true"/"false" as
booleans); an attribute `is_crowd` (or `iscrowd`) that is true sets `iscrowd` 1. An image's
annotations are in `z_order` order (stable), so a reader that paints them in turn paints as
CVAT shows them.

A split in which no image has a shape the task uses is an error that counts what the images
have (detection on a tag-only dataset must not "train" on empty labels). Numbers that are not
finite or out of range are errors naming image, shape and attribute (cvat_shapes.ShapeError);
shapes without extent are skipped and counted.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import math
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainkit_runtime import cvat_shapes
from trainkit_runtime.cvat_shapes import AREA_KINDS, EmptyShape, ShapeRef
from trainkit_runtime.dataset import DatasetError

log = logging.getLogger("cvat_dataset")

COCO_DATASET_TYPES = ("segmentation", "classification", "detection")
# Every annotation element of an <image> (CVAT for images 1.1).
ANNOTATION_TYPES = (
    "box",
    "polygon",
    "polyline",
    "points",
    "skeleton",
    "tag",
    "mask",
    "ellipse",
    "cuboid",
)
ANNOTATION_SET = frozenset(ANNOTATION_TYPES)
# What a task needs at least one of in a split (else: a task/shape mismatch error).
NEEDED_KINDS = {
    "classification": ("tag", *AREA_KINDS),
    "detection": AREA_KINDS,
    "segmentation": ("polygon", "ellipse", "mask"),
}
MAX_IMAGE_SIDE = 1 << 16
CROWD_ATTRIBUTES = ("is_crowd", "iscrowd")


# --- xmltodict-shaped values ----------------------------------------------------------------


def as_list(value: Any) -> list[Any]:
    """xmltodict child value (absent/None, one dict, or a list) → list."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def get_image_annotations(image: dict, annotation_type: str) -> list[dict]:
    """The `annotation_type` children (`"box"`, `"polygon"`, `"tag"`, ...) of an image, as a
    list whether the image holds none, one (dict) or several (list)."""
    return [a for a in as_list(image.get(annotation_type)) if isinstance(a, dict)]


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while building many acyclic dicts: its collections would rescan
    every live object again and again (super-linear at 100k images)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _filename(filepath: Any) -> str:
    return filepath.name if isinstance(filepath, Path) else Path(filepath).name


# --- image size -----------------------------------------------------------------------------


def read_image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the image file's header: Pillow reads the header only, no decode.
    DatasetError naming the file when it is not a readable image."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DatasetError(
            f"image '{_filename(path)}' has no width/height in annotations.xml and its file "
            f"cannot be read as an image to get them ({reason})"
        ) from None


def _side(image: dict, key: str, name: str) -> int:
    raw = image.get(key)
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise DatasetError(f"image '{name}': {key[1:]}={raw!r} is not a number") from None
    if not math.isfinite(value) or value != int(value) or not 1 <= value <= MAX_IMAGE_SIDE:
        raise DatasetError(
            f"image '{name}': {key[1:]}={raw!r} is out of range (a whole number of pixels, "
            f"1..{MAX_IMAGE_SIDE})"
        )
    return int(value)


def image_size(image: dict, filepath: Any, name: str | None = None) -> tuple[int, int]:
    """(width, height) of an `<image>` dict, validated; read from the file's header when the
    XML has none (and stored back into the dict, as strings like xmltodict's)."""
    name = name or _filename(filepath)
    if image.get("@width") is None or image.get("@height") is None:
        width, height = read_image_size(Path(filepath))
        image["@width"], image["@height"] = str(width), str(height)
    return _side(image, "@width", name), _side(image, "@height", name)


# --- the conversion report ------------------------------------------------------------------


@dataclass
class ShapeReport:
    """What a conversion did with every shape: used, converted (how), not used by the task,
    dropped (why). `as_coco`/`as_yolo` fill one when given and log its summary."""

    task: str = ""
    images: int = 0
    images_with_labels: int = 0
    annotations: int = 0
    kinds: Counter = field(default_factory=Counter)
    used: Counter = field(default_factory=Counter)
    converted: Counter = field(default_factory=Counter)
    not_used: Counter = field(default_factory=Counter)
    dropped: Counter = field(default_factory=Counter)
    per_label: Counter = field(default_factory=Counter)
    multi_tag_images: int = 0

    def merge(self, other: ShapeReport) -> None:
        self.task = self.task or other.task
        self.images += other.images
        self.images_with_labels += other.images_with_labels
        self.annotations += other.annotations
        self.multi_tag_images += other.multi_tag_images
        for name in ("kinds", "used", "converted", "not_used", "dropped", "per_label"):
            getattr(self, name).update(getattr(other, name))

    def summary(self) -> str:
        def listed(counter: Counter) -> str:
            return ", ".join(f"{n} {k}" for k, n in counter.most_common())

        parts = [
            f"{self.annotations} annotations on {self.images_with_labels} of {self.images} images"
        ]
        if self.converted:
            parts.append(f"converted: {listed(self.converted)}")
        if self.not_used:
            parts.append(f"not used by {self.task}: {listed(self.not_used)}")
        if self.dropped:
            parts.append(f"dropped: {listed(self.dropped)}")
        if self.multi_tag_images:
            parts.append(
                f"{self.multi_tag_images} images with several tags (the first is the class)"
            )
        return "; ".join(parts)

    def as_dict(self) -> dict:
        return {
            "images": self.images,
            "images_with_labels": self.images_with_labels,
            "annotations": self.annotations,
            "shapes": dict(self.kinds),
            "used": dict(self.used),
            "converted": dict(self.converted),
            "not_used": dict(self.not_used),
            "dropped": dict(self.dropped),
            "per_label": dict(self.per_label),
            "multi_tag_images": self.multi_tag_images,
        }


def _mismatch(task: str, report: ShapeReport) -> DatasetError:
    needed = ", ".join(f"<{k}>" for k in NEEDED_KINDS[task])
    has = ", ".join(f"{n} <{k}>" for k, n in report.kinds.most_common()) or "no shapes"
    hint = {
        "detection": "; a tag-only dataset is for classification",
        "segmentation": "; boxes alone would train rectangles: use detection",
        "classification": "",
    }[task]
    return DatasetError(
        f"{task} needs {needed}: none of the {report.images} images of this split has one "
        f"with a declared label (they have {has}){hint}"
    )


# --- one image → annotations ----------------------------------------------------------------


_CONVERTED = {
    "detection": {
        "rotated box": "rotated box → enclosing box",
        "polygon": "polygon → enclosing box",
        "ellipse": "ellipse → enclosing box",
        "mask": "mask → enclosing box",
    },
    "segmentation": {
        "box": "box → polygon",
        "rotated box": "rotated box → polygon",
        "ellipse": "ellipse → polygon",
        "mask": "mask → COCO RLE",
    },
    "classification": {
        "box": "box → image class (no <tag>)",
        "rotated box": "box → image class (no <tag>)",
        "polygon": "polygon → image class (no <tag>)",
        "ellipse": "ellipse → image class (no <tag>)",
        "mask": "mask → image class (no <tag>)",
    },
}


def _attribute_value(text: Any) -> Any:
    if text == "true":
        return True
    if text == "false":
        return False
    return "" if text is None else str(text)


def shape_attributes(shape: dict, ref: ShapeRef) -> dict[str, Any]:
    """COCO `attributes` of a CVAT shape: occluded, z_order, track_id, its <attribute>s."""
    out: dict[str, Any] = {}
    occluded = shape.get("@occluded")
    if occluded is not None:
        out["occluded"] = occluded == "1"
    if shape.get("@z_order") is not None:
        out["z_order"] = _whole(shape, "@z_order", ref)
    if shape.get("@track_id") is not None:
        out["track_id"] = _whole(shape, "@track_id", ref)
    for attribute in as_list(shape.get("attribute")):
        if isinstance(attribute, dict) and isinstance(attribute.get("@name"), str):
            out[attribute["@name"]] = _attribute_value(attribute.get("#text"))
    return out


def _whole(shape: dict, key: str, ref: ShapeRef) -> int:
    try:  # the common case: a plain integer string
        value = int(shape[key])
    except (TypeError, ValueError):
        pass
    else:
        if abs(value) <= 1 << 31:
            return value
    value = cvat_shapes.number(shape, key, ref)
    if value != int(value) or abs(value) > 1 << 31:
        raise cvat_shapes.ShapeError(f"{ref}: {key[1:]}={shape[key]!r} is out of range")
    return int(value)


def _iscrowd(attributes: dict) -> int:
    return int(any(attributes.get(k) in (True, "1") for k in CROWD_ATTRIBUTES))


@dataclass(slots=True)
class _Annotation:
    category: str
    bbox: list[float]
    area: float
    segmentation: Any
    attributes: dict
    z_order: int


def _count_kinds(image: dict, report: ShapeReport) -> None:
    for key, value in image.items():
        if key in ANNOTATION_SET and value is not None:
            report.kinds[key] += len(value) if type(value) is list else 1


def _area_annotations(
    image: dict,
    name: str,
    size: tuple[int, int],
    task: str,
    known: dict[str, int],
    report: ShapeReport,
    attributes_wanted: bool = True,
) -> list[_Annotation]:
    out = []
    converted = _CONVERTED[task]
    for kind in AREA_KINDS:
        if image.get(kind) is None:
            continue
        for index, shape in enumerate(get_image_annotations(image, kind)):
            label = shape.get("@label")
            ref = ShapeRef(name, kind, index, str(label))
            if label not in known:
                report.dropped[f"{kind} with a label not in label_names"] += 1
                continue
            try:
                geometry = cvat_shapes.convert(kind, shape, ref, *size)
            except EmptyShape as exc:
                report.dropped[_reason(exc)] += 1
                continue
            attributes = shape_attributes(shape, ref) if attributes_wanted else {}
            if geometry.extra and attributes_wanted:
                attributes.update(geometry.extra)
            how = "rotated box" if geometry.rotated else kind
            if how in converted:
                report.converted[converted[how]] += 1
            report.used[kind] += 1
            segmentation = geometry.rle if geometry.rle is not None else [geometry.polygon]
            out.append(
                _Annotation(
                    label,
                    geometry.bbox,
                    geometry.area,
                    segmentation,
                    attributes,
                    attributes.get("z_order", 0),
                )
            )
    return out


def _reason(exc: EmptyShape) -> str:
    """'empty box 1,2,1,5' → 'empty box': the kind of degeneracy, without the numbers."""
    text = str(exc)
    for stem in ("empty box", "polygon with zero area", "mask without pixels"):
        if text.startswith(stem):
            return stem
    if text.startswith("polygon with"):
        return "polygon with fewer than 3 points"
    if text.startswith("ellipse with"):
        return "ellipse without extent"
    return text


def _tag_annotations(
    image: dict, name: str, size: tuple[int, int], known: dict[str, int], report: ShapeReport
) -> list[_Annotation]:
    width, height = size
    out = []
    tags = get_image_annotations(image, "tag")
    for index, tag in enumerate(tags):
        label = tag.get("@label")
        if label not in known:
            report.dropped["tag with a label not in label_names"] += 1
            continue
        ref = ShapeRef(name, "tag", index, str(label))
        attributes = shape_attributes(tag, ref)
        report.used["tag"] += 1
        out.append(
            _Annotation(
                label,
                [0.0, 0.0, float(width), float(height)],
                float(width * height),
                None,
                attributes,
                0,
            )
        )
    if len(out) > 1:
        report.multi_tag_images += 1
    return out


def image_annotations(
    image: dict,
    filepath: Any,
    task: str,
    known: dict[str, int],
    report: ShapeReport,
    attributes_wanted: bool = True,
) -> tuple[tuple[int, int], list[_Annotation]]:
    """(image size, the annotations `task` makes of this image, in z_order; without
    `attributes_wanted` (YOLO) neither attributes nor order are made)."""
    name = _filename(filepath)
    size = image_size(image, filepath, name)
    report.images += 1
    _count_kinds(image, report)
    if task == "classification":
        annotations = _tag_annotations(image, name, size, known, report)
        uses: tuple[str, ...] = ("tag",)
        if not annotations and not get_image_annotations(image, "tag"):
            annotations = _area_annotations(image, name, size, task, known, report)
            uses = AREA_KINDS
    else:
        annotations = _area_annotations(image, name, size, task, known, report, attributes_wanted)
        uses = AREA_KINDS
    for key, value in image.items():
        if key in ANNOTATION_SET and key not in uses and value is not None:
            report.not_used[key] += len(value) if type(value) is list else 1
    if len(annotations) > 1:
        annotations.sort(key=lambda a: a.z_order)
    if annotations:
        report.images_with_labels += 1
        report.annotations += len(annotations)
        for annotation in annotations:
            report.per_label[annotation.category] += 1
    return size, annotations


def _finish(task: str, report: ShapeReport, caller: str, files: int) -> None:
    """Log the summary; a split without a shape the task needs is an error (segmentation
    needs a polygon, mask or ellipse: boxes alone would train rectangles)."""
    if files and not any(report.used[k] for k in NEEDED_KINDS[task]):
        if report.dropped and not report.annotations:
            raise DatasetError(f"{caller}: no usable shape in this split: {report.summary()}")
        raise _mismatch(task, report)
    log.info("%s: %s", caller, report.summary())


# --- COCO -----------------------------------------------------------------------------------


def as_coco(
    label_names: list[str],
    files_with_annotations: dict[Path, dict],
    dataset_type: str = "segmentation",
    *,
    report: ShapeReport | None = None,
) -> dict[str, list]:
    """COCO dict: `categories` (ids from 1 in label order), `images`, `annotations` (see the
    module docstring for what each task makes of each shape). Images without annotations
    for the task are left out (counted in the log line)."""
    if dataset_type not in COCO_DATASET_TYPES:
        raise DatasetError(
            f"as_coco: dataset_type {dataset_type!r} is not one of {', '.join(COCO_DATASET_TYPES)}"
        )
    report = report if report is not None else ShapeReport()
    report.task = dataset_type
    category_ids = {name: i for i, name in enumerate(label_names, start=1)}
    coco: dict[str, list] = {
        "categories": [{"id": i, "name": name} for name, i in category_ids.items()],
        "images": [],
        "annotations": [],
    }
    images, annotations = coco["images"], coco["annotations"]
    annotation_id = 1
    with gc_paused():
        for image_id, (filepath, image) in enumerate(files_with_annotations.items(), start=1):
            (width, height), entries = image_annotations(
                image, filepath, dataset_type, category_ids, report
            )
            if not entries:
                continue
            images.append(
                {
                    "id": image_id,
                    "file_name": _filename(filepath),
                    "height": height,
                    "width": width,
                }
            )
            for a in entries:
                entry: dict[str, Any] = {
                    "id": annotation_id,
                    "image_id": image_id,
                    "category_id": category_ids[a.category],
                }
                if a.segmentation is not None:
                    entry["segmentation"] = a.segmentation
                entry["area"] = a.area
                entry["bbox"] = a.bbox
                entry["iscrowd"] = _iscrowd(a.attributes)
                if a.attributes:
                    entry["attributes"] = a.attributes
                annotations.append(entry)
                annotation_id += 1
    _finish(dataset_type, report, f"as_coco({dataset_type})", len(files_with_annotations))
    return coco


def write_json_atomically(target: Path, value: Any) -> None:
    """JSON without NaN/Infinity (allow_nan=False: a non-finite number is a bug, not output),
    written to a temp file and renamed, so a reader never sees half a file."""
    text = json.dumps(value, allow_nan=False)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(target)


LabelsFn = Callable[[Path, list[str], dict[Path, dict]], None]


def coco_labels_writer(dataset_type: str, filename: str = "labels.json") -> LabelsFn:
    """A `create_labels_fn` writing `as_coco(...)` to `<labels dir>/<filename>`."""

    def write(
        labels_path: Path, label_names: list[str], files_with_annotations: dict[Path, dict]
    ) -> None:
        coco = as_coco(label_names, files_with_annotations, dataset_type=dataset_type)
        write_json_atomically(Path(labels_path) / filename, coco)

    return write


# --- YOLO -----------------------------------------------------------------------------------


def _clip01(value: float) -> float:
    return 0.0 if value < 0 else 1.0 if value > 1 else value


def _check_stems(files: dict[Path, dict]) -> None:
    """YOLO's label file is `<image stem>.txt`: two images with one stem would share it."""
    seen: dict[str, Any] = {}
    for filepath in files:
        stem = filepath.stem if isinstance(filepath, Path) else Path(filepath).stem
        if stem in seen:
            raise DatasetError(
                f"YOLO labels: images '{_filename(seen[stem])}' and '{_filename(filepath)}' "
                f"would share the label file '{stem}.txt': rename one of them (or use COCO)"
            )
        seen[stem] = filepath


def as_yolo(
    label_names: list[str],
    files_with_annotations: dict[Path, dict],
    *,
    report: ShapeReport | None = None,
) -> dict[Path, list[str]]:
    """{file: ["cls xc yc w h", ...]}: the enclosing box of every shape detection uses (boxes,
    rotated boxes, polygons, ellipses, masks), normalised by the image size and clipped to
    [0, 1]; every image is a key (an empty list = background image). Two images with one
    stem are an error (they would share `<stem>.txt`)."""
    _check_stems(files_with_annotations)
    report = report if report is not None else ShapeReport()
    report.task = "detection"
    index = {name: i for i, name in enumerate(label_names)}
    labels: dict[Path, list[str]] = {}
    with gc_paused():
        for filepath, image in files_with_annotations.items():
            (width, height), entries = image_annotations(
                image, filepath, "detection", index, report, attributes_wanted=False
            )
            lines = []
            for a in entries:
                x, y, w, h = a.bbox
                x0, x1 = _clip01(x / width), _clip01((x + w) / width)
                y0, y1 = _clip01(y / height), _clip01((y + h) / height)
                if x1 <= x0 or y1 <= y0:
                    report.dropped["shape outside the image"] += 1
                    continue
                xc, yc, bw, bh = (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0
                lines.append(f"{index[a.category]} {xc:.6f} {yc:.6f} {bw:.6f} {bh:.6f}")
            labels[filepath] = lines
    _finish("detection", report, "as_yolo", len(files_with_annotations))
    return labels


def write_yolo_labels(
    labels_path: Path, label_names: list[str], files_with_annotations: dict[Path, dict]
) -> None:
    """A `create_labels_fn`: one `<stem>.txt` per image and `classes.txt` (one name a line)."""
    labels_path = Path(labels_path)
    labels = as_yolo(label_names, files_with_annotations)
    (labels_path / "classes.txt").write_text(
        "".join(f"{n}\n" for n in label_names), encoding="utf-8"
    )
    for filepath, lines in labels.items():
        text = "".join(f"{line}\n" for line in lines)
        (labels_path / f"{Path(filepath).stem}.txt").write_text(text, encoding="utf-8")
