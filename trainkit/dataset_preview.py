"""The picture of `trainkit dataset check`: labels read back AS THE EXAMPLE DATAMODULES READ
THEM, drawn on their images in a contact sheet.

The readers below follow the template's `_tasks/*/datamodule.py` (tests compare them):
classification = the category of an image's first annotation in `labels.json`; detection =
`labels.json` bboxes, or YOLO `<image stem>.txt` lines (normalised `class xc yc w h`) for
every image of the split; segmentation = `labels.json` polygons and uncompressed RLE masks,
painted in file order (class mask value = category rank + 1). So what the picture shows is
what training will see, not what the CVAT file says.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Class colours (RGB), cycled: bright, and unlike the synthetic data's own colours.
PALETTE = (
    (255, 0, 255),
    (0, 255, 255),
    (255, 140, 0),
    (255, 255, 255),
    (160, 255, 60),
    (255, 90, 140),
    (120, 120, 255),
    (255, 230, 120),
    (0, 200, 140),
    (200, 160, 255),
)
FILL_ALPHA = 110
CELL = 192
CAPTION = 14
COLUMNS = 4
IMAGE_SUFFIXES = {".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp"}


@dataclass
class Sample:
    """One image as the datamodule reads it: class index (classification) and shapes, each
    (class index, "box" [x0, y0, x1, y1] px | "polygon" [(x, y), ...] | "rle" COCO RLE)."""

    split: str
    file_name: str
    image_class: int | None = None
    shapes: list[tuple[int, str, Any]] = field(default_factory=list)


def _coco(labels_file: Path) -> dict:
    return json.loads(labels_file.read_text(encoding="utf-8"))


def _category_index(coco: dict) -> dict[int, int]:
    categories = sorted(coco.get("categories", []), key=lambda c: c["id"])
    return {c["id"]: i for i, c in enumerate(categories)}


def _polygons(segmentation: Any) -> list[list[tuple[float, float]]]:
    if not isinstance(segmentation, list):
        return []
    if all(isinstance(p, list) and len(p) == 2 for p in segmentation) and segmentation:
        return [[(float(x), float(y)) for x, y in segmentation]]
    return [
        list(zip(map(float, flat[0::2]), map(float, flat[1::2]), strict=True))
        for flat in segmentation
        if isinstance(flat, list) and len(flat) >= 6
    ]


def read_split(root: Path, split: str, task: str, label_format: str) -> list[Sample]:
    """Every sample of one split of a set-up dataset root (`images/`, `labels/`)."""
    labels_dir = root / "labels" / split
    if label_format == "YOLO":
        images_dir = root / "images" / split
        names = sorted(
            e.name for e in os.scandir(images_dir) if Path(e.name).suffix.lower() in IMAGE_SUFFIXES
        )
        samples = []
        for name in names:
            sample = Sample(split, name)
            label_file = labels_dir / f"{Path(name).stem}.txt"
            if label_file.exists():
                for line in label_file.read_text(encoding="utf-8").splitlines():
                    fields = line.split()
                    if len(fields) == 5:
                        cls, xc, yc, w, h = int(float(fields[0])), *map(float, fields[1:])
                        sample.shapes.append((cls, "yolo", (xc, yc, w, h)))
            samples.append(sample)
        return samples
    coco = _coco(labels_dir / "labels.json")
    index = _category_index(coco)
    by_image: dict[int, Sample] = {
        image["id"]: Sample(split, image["file_name"]) for image in coco.get("images", [])
    }
    for annotation in coco.get("annotations", []):
        sample = by_image.get(annotation["image_id"])
        if sample is None:
            continue
        cls = index[annotation["category_id"]]
        if task == "classification":
            if sample.image_class is None:
                sample.image_class = cls
        elif task == "detection":
            x, y, w, h = annotation["bbox"]
            sample.shapes.append((cls, "box", (x, y, x + w, y + h)))
        else:
            segmentation = annotation.get("segmentation")
            if isinstance(segmentation, dict):
                if isinstance(segmentation.get("counts"), list):
                    sample.shapes.append((cls, "rle", segmentation))
            else:
                for polygon in _polygons(segmentation):
                    sample.shapes.append((cls, "polygon", polygon))
    return list(by_image.values())


def pick(samples: list[Sample], count: int) -> list[Sample]:
    """`count` samples spread evenly over the list (deterministic)."""
    if len(samples) <= count:
        return list(samples)
    step = len(samples) / count
    return [samples[int(i * step)] for i in range(count)]


def sheet_size(n: int, cell: int = CELL, columns: int = COLUMNS) -> tuple[int, int]:
    """(width, height) in pixels of a contact sheet of n samples."""
    cols = max(1, min(columns, n))
    rows = max(1, math.ceil(n / cols))
    return cols * cell, rows * (cell + CAPTION)


def _colour(cls: int) -> tuple[int, int, int]:
    return PALETTE[cls % len(PALETTE)]


def _draw_sample(sample: Sample, image_path: Path, names: list[str], cell: int):
    from PIL import Image, ImageDraw, ImageFilter

    from trainkit_runtime.cvat_shapes import decode_coco_rle

    with Image.open(image_path) as source:
        rgb = source.convert("RGB")
    width, height = rgb.size
    scale = min(cell / width, cell / height)
    thumb_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    thumb = rgb.resize(thumb_size, Image.Resampling.BILINEAR).convert("RGBA")
    overlay = Image.new("RGBA", thumb_size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    texts = []
    for cls, kind, value in sample.shapes:
        colour = _colour(cls)
        fill, line = (*colour, FILL_ALPHA), (*colour, 255)
        if kind in ("box", "yolo"):
            if kind == "yolo":
                xc, yc, w, h = value
                value = ((xc - w / 2) * width, (yc - h / 2) * height,
                         (xc + w / 2) * width, (yc + h / 2) * height)  # fmt: skip
            x0, y0, x1, y1 = (v * scale for v in value)
            draw.rectangle((x0, y0, x1, y1), fill=fill, outline=line, width=2)
            texts.append((x0 + 2, y0 + 1, cls, colour))
        elif kind == "polygon":
            points = [(x * scale, y * scale) for x, y in value]
            draw.polygon(points, fill=fill, outline=line, width=2)
            texts.append((min(p[0] for p in points), min(p[1] for p in points), cls, colour))
        elif kind == "rle":
            bits = decode_coco_rle(value) * FILL_ALPHA
            stencil = Image.fromarray(bits).resize(thumb_size, Image.Resampling.NEAREST)
            overlay.paste(Image.new("RGBA", thumb_size, line), (0, 0), stencil)
            edge = stencil.point(lambda v: 255 if v else 0).filter(ImageFilter.FIND_EDGES)
            overlay.paste(Image.new("RGBA", thumb_size, line), (0, 0), edge)
            box = stencil.getbbox()
            if box:
                texts.append((box[0], box[1], cls, colour))
    thumb = Image.alpha_composite(thumb, overlay)
    draw = ImageDraw.Draw(thumb)
    for x, y, cls, colour in texts:
        text = names[cls] if cls < len(names) else str(cls)
        x, y = max(0, x), max(0, y - 11)
        draw.rectangle(draw.textbbox((x, y), text), fill=(0, 0, 0, 200))
        draw.text((x, y), text, fill=(*colour, 255))
    if sample.image_class is not None:
        colour = _colour(sample.image_class)
        draw.rectangle((0, 0, thumb_size[0] - 1, thumb_size[1] - 1), outline=colour, width=4)
        draw.rectangle((0, 0, thumb_size[0], 14), fill=(0, 0, 0, 255))
        draw.text((4, 1), names[sample.image_class], fill=(*colour, 255))
    return thumb.convert("RGB")


def write_contact_sheet(
    samples: list[Sample],
    images_root: Path,
    names: list[str],
    out: Path,
    cell: int = CELL,
    columns: int = COLUMNS,
) -> tuple[int, int]:
    """Draw `samples` (their images under `images_root/<split>/`) into a PNG at `out`
    (written to a temp file, then renamed); returns its size."""
    from PIL import Image, ImageDraw

    size = sheet_size(len(samples), cell, columns)
    cols = max(1, min(columns, len(samples)))
    sheet = Image.new("RGB", size, (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    for i, sample in enumerate(samples):
        x, y = (i % cols) * cell, (i // cols) * (cell + CAPTION)
        thumb = _draw_sample(sample, images_root / sample.split / sample.file_name, names, cell)
        sheet.paste(thumb, (x + (cell - thumb.width) // 2, y + (cell - thumb.height) // 2))
        draw.text((x + 3, y + cell + 1), f"{sample.split}/{sample.file_name}"[:32], fill="white")
    tmp = out.with_name(f".{out.name}.tmp")
    sheet.save(tmp, format="PNG")
    tmp.replace(out)
    return size
