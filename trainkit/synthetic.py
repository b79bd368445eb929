"""`trainkit dataset`: a synthetic, learnable CVAT-for-images 1.1 dataset in a mocked MinIO folder.

Writes `<out>/datasets/<id>/` with the images (flat) and `annotations/annotations.xml`, the
layout the platform mounts at `/minio/datasets/<id>/`. Each image shows coloured shapes on a
dark background; the label is the shape (each shape also has its own colour), so a small
model learns it quickly:

- classification: one shape per image, annotated with `<tag>`;
- detection: 1-3 non-overlapping shapes, each with a `<box>`;
- segmentation: 1-3 shapes, each with a `<polygon>` outlining the filled area.

`--shapes mixed` annotates each class with another CVAT shape kind instead, so one dataset
holds every kind setup converts: circles as `<ellipse>`, squares drawn rotated as `<box
rotation=...>`, triangles as `<polygon>`, crosses as brush `<mask>`s (CVAT RLE); plus a
`<polyline>` on every 4th image and `<points>` on every 5th (kinds no task uses).
`--video` writes a CVAT *for video* 1.1 export instead: frames `frame_000000.png`, ... and one
`<track>` per object (its shape on its frame, `outside="1"` on the next), with the frame size
in `<original_size>` (detection and segmentation).

Same seed, same arguments → byte-identical files. `placeholder=True` writes empty image files
(annotations still complete), which is what the setup benchmarks use at 100k images.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import quoteattr

from trainkit.errors import TrainkitError, UsageError
from trainkit_runtime import values

TASKS = ("classification", "detection", "segmentation")
SHAPE_MODES = ("plain", "mixed")
# --shapes mixed: the CVAT kind each class is annotated with.
MIXED_KINDS = {"circle": "ellipse", "square": "box", "triangle": "polygon", "cross": "mask"}
# Label names in <labels> order, each with its drawing colour.
SHAPES = ("circle", "square", "triangle", "cross")
COLOURS = {
    "circle": (230, 60, 60),
    "square": (60, 200, 80),
    "triangle": (70, 110, 240),
    "cross": (240, 210, 60),
}
# Bounds on the work one command line can ask for: a 100000-pixel side would allocate 30 GB.
MIN_SIZE, MAX_SIZE = 16, 4096
MAX_IMAGES = 1_000_000
IMAGE_NAME = "synthetic_{:06d}.{}"
FRAME_NAME = "frame_{:06d}.{}"
_IMAGE_NAME_RE = re.compile(r"^(synthetic|frame)_\d{6}\.(png|jpg)$")
ANNOTATIONS = Path("annotations", "annotations.xml")
DUMPED = "2024-01-01 00:00:00.000000+00:00"  # fixed: output depends only on the arguments


@dataclass(frozen=True)
class Shape:
    """An object: its class and outline; `kind` is the CVAT element that annotates it, with
    what that element needs (`xml` attributes) and how it is drawn (`draw`: a polygon, or a
    bitmap for masks)."""

    label: str
    points: tuple[tuple[float, float], ...]
    kind: str = ""
    xml: tuple[tuple[str, str], ...] = ()
    bitmap: tuple[int, int, object] | None = None  # (left, top, "1" image) for masks

    def bounds(self) -> tuple[float, float, float, float]:
        xs = [p[0] for p in self.points]
        ys = [p[1] for p in self.points]
        return min(xs), min(ys), max(xs), max(ys)


def _outline(label: str, cx: float, cy: float, r: float) -> Shape:
    """Polygon of a shape centred at (cx, cy) with 'radius' r."""
    if label == "circle":
        pts = [
            (cx + r * math.cos(2 * math.pi * k / 16), cy + r * math.sin(2 * math.pi * k / 16))
            for k in range(16)
        ]
    elif label == "square":
        pts = [(cx - r, cy - r), (cx + r, cy - r), (cx + r, cy + r), (cx - r, cy + r)]
    elif label == "triangle":
        pts = [(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)]
    else:  # cross: a plus sign with arms of width r/1.5
        a = r / 3
        pts = [
            (cx - a, cy - r), (cx + a, cy - r), (cx + a, cy - a), (cx + r, cy - a),
            (cx + r, cy + a), (cx + a, cy + a), (cx + a, cy + r), (cx - a, cy + r),
            (cx - a, cy + a), (cx - r, cy + a), (cx - r, cy - a), (cx - a, cy - a),
        ]  # fmt: skip
    return Shape(label, tuple((round(x, 2), round(y, 2)) for x, y in pts))


def _overlaps(a: tuple, b: tuple, margin: float = 2.0) -> bool:
    return not (
        a[2] + margin <= b[0]
        or b[2] + margin <= a[0]
        or a[3] + margin <= b[1]
        or b[3] + margin <= a[1]
    )


def _make_shapes(task: str, labels: tuple[str, ...], size: int, rng: random.Random) -> list[Shape]:
    if task == "classification":
        r = rng.uniform(0.18, 0.32) * size
        cx, cy = rng.uniform(r, size - r), rng.uniform(r, size - r)
        return [_outline(rng.choice(labels), cx, cy, r)]
    shapes: list[Shape] = []
    for _ in range(rng.randint(1, 3)):
        for _attempt in range(20):
            r = rng.uniform(0.10, 0.20) * size
            cx, cy = rng.uniform(r, size - r), rng.uniform(r, size - r)
            shape = _outline(rng.choice(labels), cx, cy, r)
            if not any(_overlaps(shape.bounds(), s.bounds()) for s in shapes):
                shapes.append(shape)
                break
    return shapes


def _draw(path: Path, shapes: list[Shape], size: int, rng: random.Random) -> None:
    from PIL import Image, ImageDraw

    grey = rng.randint(10, 70)
    image = Image.new("RGB", (size, size), (grey, grey, grey))
    draw = ImageDraw.Draw(image)
    for shape in shapes:
        jitter = rng.randint(-25, 25)
        colour = tuple(max(0, min(255, c + jitter)) for c in COLOURS[shape.label])
        if shape.bitmap is not None:
            left, top, bitmap = shape.bitmap
            image.paste(colour, (left, top, left + bitmap.width, top + bitmap.height), bitmap)
        else:
            draw.polygon(list(shape.points), fill=colour)
    image.save(path, format="PNG", optimize=False)


def _fmt(value: float) -> str:
    return f"{value:.2f}"


def _cvat_rle(bitmap) -> str:
    """CVAT's brush-mask RLE of a "1" image: row-major runs, background first."""
    bits = (
        [1 if v else 0 for v in bitmap.get_flattened_data()]
        if hasattr(bitmap, "get_flattened_data")
        else [1 if v else 0 for v in bitmap.getdata()]
    )
    runs, current, count = [], 0, 0
    for bit in bits:
        if bit == current:
            count += 1
        else:
            runs.append(count)
            current, count = bit, 1
    runs.append(count)
    return ", ".join(str(r) for r in runs)  # CVAT writes "a, b, c"


def _as_mixed(shape: Shape, size: int, rng: random.Random) -> Shape:
    """Re-annotate an object with its class's MIXED_KINDS kind (drawn to match)."""
    from PIL import Image, ImageDraw

    from trainkit_runtime.cvat_shapes import ellipse_points, rotate_points

    kind = MIXED_KINDS[shape.label]
    x0, y0, x1, y1 = shape.bounds()
    cx, cy = round((x0 + x1) / 2, 2), round((y0 + y1) / 2, 2)
    if kind == "box":
        angle = round(rng.uniform(5, 40), 2)
        corners = rotate_points([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], angle, cx, cy)
        xml = (("xtl", _fmt(x0)), ("ytl", _fmt(y0)), ("xbr", _fmt(x1)), ("ybr", _fmt(y1)),
               ("rotation", _fmt(angle)))  # fmt: skip
        return Shape(shape.label, tuple(corners), kind, xml)
    if kind == "ellipse":
        rx, ry = round((x1 - x0) / 2, 2), round((y1 - y0) / 2, 2)
        xml = (("cx", _fmt(cx)), ("cy", _fmt(cy)), ("rx", _fmt(rx)), ("ry", _fmt(ry)))
        return Shape(shape.label, tuple(ellipse_points(cx, cy, rx, ry, 0.0)), kind, xml)
    if kind == "mask":
        canvas = Image.new("1", (size, size), 0)
        ImageDraw.Draw(canvas).polygon(list(shape.points), fill=1)
        left, top, right, bottom = canvas.getbbox()
        bitmap = canvas.crop((left, top, right, bottom))
        xml = (("rle", _cvat_rle(bitmap)), ("left", str(left)), ("top", str(top)),
               ("width", str(bitmap.width)), ("height", str(bitmap.height)))  # fmt: skip
        return Shape(shape.label, shape.points, kind, xml, (left, top, bitmap))
    return Shape(shape.label, shape.points, "polygon")


def _shape_xml(shape: Shape, task: str, indent: str, extra: str = "") -> str:
    """The CVAT element annotating one object (plain: <box> or <polygon> by task)."""
    label = quoteattr(shape.label)
    if shape.kind and shape.kind != "polygon":
        attrs = " ".join(f"{k}={quoteattr(v)}" for k, v in shape.xml)
        return (
            f'{indent}<{shape.kind} label={label} source="manual" occluded="0"{extra} {attrs} '
            f'z_order="0">\n{indent}</{shape.kind}>'
        )
    if shape.kind == "polygon" or task == "segmentation":
        points = ";".join(f"{_fmt(x)},{_fmt(y)}" for x, y in shape.points)
        return (
            f'{indent}<polygon label={label} source="manual" occluded="0"{extra} '
            f'points="{points}" z_order="0">\n{indent}</polygon>'
        )
    x0, y0, x1, y1 = shape.bounds()
    return (
        f'{indent}<box label={label} source="manual" occluded="0"{extra} xtl="{_fmt(x0)}" '
        f'ytl="{_fmt(y0)}" xbr="{_fmt(x1)}" ybr="{_fmt(y1)}" z_order="0">\n{indent}</box>'
    )


def _unused_xml(index: int, shapes: list[Shape]) -> str:
    """--shapes mixed: kinds no task uses, on some images (they must be reported, not fail)."""
    out = []
    if not shapes:
        return ""
    label = quoteattr(shapes[0].label)
    x0, y0, x1, y1 = shapes[0].bounds()
    if index % 4 == 0:
        out.append(
            f'    <polyline label={label} source="manual" occluded="0" '
            f'points="{_fmt(x0)},{_fmt(y0)};{_fmt(x1)},{_fmt(y1)}" z_order="0">\n    </polyline>'
        )
    if index % 5 == 0:
        out.append(
            f'    <points label={label} source="manual" occluded="0" '
            f'points="{_fmt((x0 + x1) / 2)},{_fmt((y0 + y1) / 2)}" z_order="0">\n    </points>'
        )
    return "".join(f"{line}\n" for line in out)


def _image_xml(
    image_id: int, name: str, size: int, task: str, shapes: list[Shape], extra: str
) -> str:
    lines = [
        f'  <image id="{image_id}" name={quoteattr(name)}{extra} width="{size}" height="{size}">'
    ]
    for shape in shapes:
        if task == "classification":
            label = quoteattr(shape.label)
            lines.append(f'    <tag label={label} source="manual">\n    </tag>')
        # Classification images get a box too (the older template repository's as_coco
        # read boxes for classification; the platform's and ours read the tag).
        lines.append(_shape_xml(shape, task, "    "))
    lines.append("  </image>")
    return "\n".join(lines) + "\n"


def _tracks_xml(first_track: int, frame: int, task: str, shapes: list[Shape]) -> str:
    """CVAT for video: one track per object, on `frame`, outside from the next frame on."""
    out = []
    for offset, shape in enumerate(shapes):
        out.append(f'  <track id="{first_track + offset}" label={quoteattr(shape.label)}>')
        for f, outside in ((frame, 0), (frame + 1, 1)):
            extra = f' frame="{f}" outside="{outside}" keyframe="1"'
            out.append(_shape_xml(shape, task, "    ", extra).replace(' source="manual"', ""))
        out.append("  </track>")
    return "".join(f"{line}\n" for line in out)


def _labels_xml(labels: tuple[str, ...], indent: str) -> str:
    out = [f"{indent}<labels>"]
    for label in labels:
        r, g, b = COLOURS[label]
        out.append(
            f"{indent}  <label>\n{indent}    <name>{label}</name>\n"
            f"{indent}    <color>#{r:02x}{g:02x}{b:02x}</color>\n{indent}    <type>any</type>\n"
            f"{indent}    <attributes>\n{indent}    </attributes>\n{indent}  </label>"
        )
    out.append(f"{indent}</labels>")
    return "\n".join(out)


def _meta_xml(
    task: str, n_images: int, labels: tuple[str, ...], project: bool, video_size: int = 0
) -> str:
    if not project:
        mode = "interpolation" if video_size else "annotation"
        original = (
            f"      <original_size>\n        <width>{video_size}</width>\n"
            f"        <height>{video_size}</height>\n      </original_size>\n"
            if video_size
            else ""
        )
        return (
            "  <meta>\n    <task>\n      <id>1</id>\n"
            f"      <name>synthetic-{task}</name>\n      <size>{n_images}</size>\n"
            f"      <mode>{mode}</mode>\n      <overlap>0</overlap>\n"
            f"{_labels_xml(labels, '      ')}\n{original}    </task>\n"
            f"    <dumped>{DUMPED}</dumped>\n  </meta>\n"
        )
    n_train = (n_images + 1) // 2
    tasks = "".join(
        f"        <task>\n          <id>{tid}</id>\n          <name>synthetic-{subset.lower()}"
        f"</name>\n          <size>{size}</size>\n          <mode>annotation</mode>\n"
        f"          <subset>{subset}</subset>\n        </task>\n"
        for tid, subset, size in ((1, "Train", n_train), (2, "Validation", n_images - n_train))
    )
    return (
        "  <meta>\n    <project>\n      <id>1</id>\n"
        f"      <name>synthetic-{task}</name>\n"
        f"{_labels_xml(labels, '      ')}\n      <tasks>\n{tasks}      </tasks>\n"
        f"    </project>\n    <dumped>{DUMPED}</dumped>\n  </meta>\n"
    )


def _remove_previous_output(dataset_dir: Path) -> None:
    """With force: remove only files this module writes (never the user's other files)."""
    with os.scandir(dataset_dir) as entries:
        for entry in entries:
            if _IMAGE_NAME_RE.match(entry.name) and entry.is_file(follow_symlinks=False):
                Path(entry.path).unlink()


def write_cvat_dataset(
    root: str | os.PathLike,
    dataset_id: str | int,
    n_images: int,
    task: str,
    seed: int = 0,
    *,
    size: int = 64,
    n_classes: int = 3,
    project: bool = False,
    placeholder: bool = False,
    force: bool = False,
    shapes: str = "plain",
    video: bool = False,
) -> Path:
    """Write `<root>/datasets/<dataset_id>/` and return that directory.

    Raises TrainkitError when the directory already holds files and `force` is false, or on a
    bad argument. With `force`, earlier synthetic images are replaced; other files stay."""
    if task not in TASKS:
        raise UsageError(f"task {task!r} is not one of {', '.join(TASKS)}")
    if n_images < 1:
        raise UsageError(f"--images {n_images}: need at least 1 image")
    if not 2 <= n_classes <= len(SHAPES):
        raise UsageError(f"--classes {n_classes}: must be between 2 and {len(SHAPES)}")
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise UsageError(
            f"--size {size}: the image side must be {MIN_SIZE}..{MAX_SIZE} pixels "
            f"({MAX_SIZE}x{MAX_SIZE} RGB is {MAX_SIZE * MAX_SIZE * 3 // 2**20} MiB per image)"
        )
    if n_images > MAX_IMAGES:
        raise UsageError(f"--images {n_images}: at most {MAX_IMAGES:,} images")
    if shapes not in SHAPE_MODES:
        raise UsageError(f"--shapes {shapes!r} is not one of {', '.join(SHAPE_MODES)}")
    if video and (project or task == "classification"):
        raise UsageError("--video: a CVAT for video export is for detection or segmentation tasks")
    try:
        dataset_id = values.check_dataset_id(str(dataset_id), "--id")
    except values.ValueRefused as exc:
        raise UsageError(str(exc)) from None

    dataset_dir = Path(root, "datasets", dataset_id)
    if dataset_dir.is_dir() and any(dataset_dir.iterdir()):
        if not force:
            raise TrainkitError(
                f"{dataset_dir} already exists and is not empty; "
                "choose another --id/--out or pass --force to replace the synthetic files"
            )
        _remove_previous_output(dataset_dir)
    (dataset_dir / ANNOTATIONS.parent).mkdir(parents=True, exist_ok=True)

    labels = SHAPES[:n_classes]
    rng = random.Random(seed)
    ext = "jpg" if placeholder else "png"
    n_train = (n_images + 1) // 2
    annotations_path = dataset_dir / ANNOTATIONS
    fd, tmp_name = tempfile.mkstemp(
        prefix=".annotations-", suffix=".xml", dir=annotations_path.parent
    )
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as out:
            out.write('<?xml version="1.0" encoding="utf-8"?>\n<annotations>\n')
            out.write("  <version>1.1</version>\n")
            out.write(_meta_xml(task, n_images, labels, project, size if video else 0))
            next_track = 0
            for index in range(n_images):
                name = (FRAME_NAME if video else IMAGE_NAME).format(index, ext)
                objects = _make_shapes(task, labels, size, rng)
                if shapes == "mixed":
                    objects = [_as_mixed(o, size, rng) for o in objects]
                image_path = dataset_dir / name
                if placeholder:
                    os.close(os.open(image_path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644))
                else:
                    _draw(image_path, objects, size, rng)
                if video:
                    out.write(_tracks_xml(next_track, index, task, objects))
                    next_track += len(objects)
                    continue
                extra = ""
                if project:
                    subset = "Train" if index < n_train else "Validation"
                    task_id = 1 if index < n_train else 2
                    extra = f' subset="{subset}" task_id="{task_id}"'
                xml = _image_xml(index, name, size, task, objects, extra)
                if shapes == "mixed":
                    xml = xml.replace("  </image>\n", _unused_xml(index, objects) + "  </image>\n")
                out.write(xml)
            out.write("</annotations>\n")
        Path(tmp_name).chmod(0o644)
        Path(tmp_name).replace(annotations_path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return dataset_dir


# --- CLI ------------------------------------------------------------------------------------


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "dataset",
        help="write a synthetic CVAT dataset into a mocked MinIO folder",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # `trainkit dataset --out ...` writes synthetic data (the form README and scripts/demo
    # use); `trainkit dataset check ...` is a sub-command (trainkit/dataset_check.py).
    from trainkit import dataset_check

    commands = parser.add_subparsers(dest="dataset_command", metavar="{check}")
    dataset_check.add_parser(commands)
    parser.add_argument(
        "--out", type=Path, help="mocked MinIO root (e.g. dev/minio); required to write data"
    )
    parser.add_argument("--id", dest="dataset_id", default="1", help="dataset id (default 1)")
    parser.add_argument("--images", type=int, default=200, help="number of images (default 200)")
    parser.add_argument("--task", choices=TASKS, default="classification")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=64, help="image side in pixels (default 64)")
    parser.add_argument(
        "--classes", type=int, default=3, help=f"number of classes, 2-{len(SHAPES)} (default 3)"
    )
    parser.add_argument(
        "--project", action="store_true", help="write a CVAT project export (images with subset)"
    )
    parser.add_argument(
        "--shapes",
        choices=SHAPE_MODES,
        default="plain",
        help="plain: boxes/polygons; mixed: every CVAT shape kind (ellipse, rotated box, "
        "polygon, mask, plus unused polylines/points)",
    )
    parser.add_argument(
        "--video", action="store_true", help="a CVAT for video 1.1 export (tracks, frame_*.png)"
    )
    parser.add_argument(
        "--placeholder", action="store_true", help="empty image files (fast; for benchmarks)"
    )
    parser.add_argument(
        "--force", action="store_true", help="replace earlier synthetic files in the target dir"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.out is None:
        raise UsageError("--out DIR is required (or: trainkit dataset check --minio DIR ...)")
    dataset_dir = write_cvat_dataset(
        args.out,
        args.dataset_id,
        args.images,
        args.task,
        args.seed,
        size=args.size,
        n_classes=args.classes,
        project=args.project,
        placeholder=args.placeholder,
        force=args.force,
        shapes=args.shapes,
        video=args.video,
    )
    kind = "project" if args.project else "video task" if args.video else "task"
    print(
        f"wrote {args.images} {args.task} images and a CVAT {kind} export to {dataset_dir}\n"
        f"use it with: trainkit run <architecture dir> --minio {args.out} "
        f"--dataset-id {args.dataset_id}"
    )
    return 0
