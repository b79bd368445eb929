"""CVAT shapes as geometry: every shape kind of CVAT for images 1.1 that has an area.

Every label format (COCO for each task, YOLO) asks the same questions of a shape: its
enclosing axis-aligned box, its outline as a polygon, its pixels, its area. This module
answers them once, for

- `<box xtl ytl xbr ybr [rotation]>`: `rotation` in degrees about the box centre, clockwise
  on screen (y points down), as CVAT's own RotatedBoxesToPolygons transform turns it into a
  polygon: `x' = cx + cos(a)(x - cx) - sin(a)(y - cy)`, `y' = cy + sin(a)(x - cx) + cos(a)(y - cy)`;
- `<polygon points="x1,y1;x2,y2;...">`;
- `<ellipse cx cy rx ry [rotation]>`: a polygon of ELLIPSE_POINTS_PER_PIXEL-spaced points,
  rotated like a box; its enclosing box is the exact one of the ellipse;
- `<mask rle left top width height>` (CVAT brush masks): `rle` is comma-separated run lengths
  over the `width` x `height` box at (`left`, `top`), row-major, alternating background and
  foreground, starting with background (CVAT's MaskConverter; datumaro decodes it the same
  way). The result is a COCO uncompressed RLE of the whole image (`counts` column-major,
  `size` [height, width]), with area and box from its pixels.

and refuses numbers that are not finite or out of range with a ShapeError naming image,
shape and attribute (so no NaN reaches a label file). Degenerate shapes (a box or ellipse
without extent, a polygon with fewer than 3 points or no area, a mask without pixels) raise
EmptyShape: the caller skips and counts them.

numpy is needed for masks only (imported there).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from trainkit_runtime.dataset import DatasetError

# Shape kinds with an area, in the order an image's annotations are converted (then z_order).
AREA_KINDS = ("box", "polygon", "ellipse", "mask")
# CVAT kinds that no task here trains on (reported as "not used by <task>").
OTHER_KINDS = ("polyline", "points", "skeleton", "cuboid")
# A coordinate may lie outside the image (CVAT allows shapes to stick out) but not further
# than one image size: beyond that it is a broken export, not an annotation.
COORDINATE_MARGIN = 1.0
MAX_ROTATION = 360.0
# Masks: bound the work one shape can cause (pixels decoded).
MAX_MASK_PIXELS = 1 << 28
# Ellipse outline: one point per this many pixels of circumference, within the bounds below.
ELLIPSE_PIXELS_PER_POINT = 2.0
ELLIPSE_MIN_POINTS, ELLIPSE_MAX_POINTS = 16, 128


class ShapeError(DatasetError):
    """A shape's attribute is not a usable number; the message names image, shape, attribute."""


class EmptyShape(ValueError):
    """A shape without extent (skipped and counted, not an error)."""


class ShapeRef(NamedTuple):
    """Where a shape is, for messages: image name, CVAT kind, index among that kind, label.
    (A tuple: one is made per shape, at 100k images.)"""

    image: str
    kind: str
    index: int
    label: str

    def __str__(self) -> str:
        return f"image '{self.image}': <{self.kind}> #{self.index + 1} (label '{self.label}')"


@dataclass(slots=True)
class Geometry:
    """One shape converted: `bbox` [x, y, w, h] (enclosing, axis-aligned), `area`, and either a
    flat `polygon` [x1, y1, ...] or a COCO uncompressed `rle` of the whole image."""

    kind: str
    bbox: list[float]
    area: float
    polygon: list[float] | None = None
    rle: dict | None = None
    rotated: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def number(shape: dict, key: str, ref: ShapeRef) -> float:
    """The finite float of attribute `key` (`"@xtl"`), or a ShapeError naming it."""
    raw = shape.get(key)
    if raw is None:
        raise ShapeError(f"{ref}: attribute {key[1:]} is missing")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ShapeError(f"{ref}: {key[1:]}={raw!r} is not a number") from None
    if not math.isfinite(value):
        raise ShapeError(f"{ref}: {key[1:]}={raw!r} is not a finite number")
    return value


def _check_range(value: float, size: int, what: str, ref: ShapeRef) -> float:
    margin = COORDINATE_MARGIN * size
    if not -margin <= value <= size + margin:
        raise ShapeError(
            f"{ref}: {what}={value:g} is out of range for an image {size} pixels wide/high"
        )
    return value


def _rotation(shape: dict, ref: ShapeRef) -> float:
    if shape.get("@rotation") is None:
        return 0.0
    value = number(shape, "@rotation", ref)
    if not -MAX_ROTATION <= value <= MAX_ROTATION:
        raise ShapeError(f"{ref}: rotation={value:g} is out of range (degrees, -360..360)")
    return value


def rotate_points(
    points: list[tuple[float, float]], degrees: float, cx: float, cy: float
) -> list[tuple[float, float]]:
    """CVAT's rotation: about (cx, cy), clockwise on screen for positive degrees."""
    a = math.radians(degrees)
    c, s = math.cos(a), math.sin(a)
    return [(cx + c * (x - cx) - s * (y - cy), cy + s * (x - cx) + c * (y - cy)) for x, y in points]


def _bounds(points: list[tuple[float, float]]) -> list[float]:
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    x0, y0 = min(xs), min(ys)
    return [x0, y0, max(xs) - x0, max(ys) - y0]


def _flat(points: list[tuple[float, float]]) -> list[float]:
    return [c for p in points for c in p]


def polygon_area(points: list[tuple[float, float]]) -> float:
    """Shoelace formula (absolute area)."""
    s = 0.0
    for (x0, y0), (x1, y1) in zip(points, points[1:] + points[:1], strict=True):
        s += x0 * y1 - x1 * y0
    return abs(s) / 2.0


def parse_points(points: str, ref: ShapeRef | None = None) -> list[tuple[float, float]]:
    """CVAT `points="x1,y1;x2,y2;..."` → [(x1, y1), ...]; every value finite."""
    out = []
    for pair in points.strip().split(";"):
        if not pair.strip():
            continue
        parts = pair.split(",")
        try:
            if len(parts) != 2:
                raise ValueError
            x, y = float(parts[0]), float(parts[1])
        except ValueError:
            where = f"{ref}: " if ref else ""
            raise ShapeError(f"{where}points has {pair.strip()!r}, not 'x,y'") from None
        if not (math.isfinite(x) and math.isfinite(y)):
            where = f"{ref}: " if ref else ""
            raise ShapeError(f"{where}points has {pair.strip()!r}: not finite numbers")
        out.append((x, y))
    return out


def _check_points(points: list[tuple[float, float]], width: int, height: int, ref: ShapeRef):
    for x, y in points:
        _check_range(x, width, "x", ref)
        _check_range(y, height, "y", ref)


def _box_checked(shape: dict, ref: ShapeRef, width: int, height: int) -> None:
    """The box's numbers one by one: raises the ShapeError that names the bad one."""
    _check_range(number(shape, "@xtl", ref), width, "xtl", ref)
    _check_range(number(shape, "@ytl", ref), height, "ytl", ref)
    _check_range(number(shape, "@xbr", ref), width, "xbr", ref)
    _check_range(number(shape, "@ybr", ref), height, "ybr", ref)


def box(shape: dict, ref: ShapeRef, width: int, height: int) -> Geometry:
    """`<box>`: enclosing box; outline = its 4 corners (rotated about the centre if rotated).

    Fast path first (boxes are most shapes at 100k images): four float()s and one range test,
    which NaN fails as well; anything off goes through _box_checked for the message."""
    try:
        x0, y0 = float(shape["@xtl"]), float(shape["@ytl"])
        x1, y1 = float(shape["@xbr"]), float(shape["@ybr"])
    except (KeyError, TypeError, ValueError):
        x0 = y0 = x1 = y1 = math.nan
    mx, my = COORDINATE_MARGIN * width, COORDINATE_MARGIN * height
    if not (
        -mx <= x0 <= width + mx
        and -mx <= x1 <= width + mx
        and -my <= y0 <= height + my
        and -my <= y1 <= height + my
    ):
        _box_checked(shape, ref, width, height)
    rotation = _rotation(shape, ref) if shape.get("@rotation") is not None else 0.0
    if x1 <= x0 or y1 <= y0:
        raise EmptyShape(f"empty box {x0:g},{y0:g},{x1:g},{y1:g}")
    area = (x1 - x0) * (y1 - y0)
    if rotation % 360.0 == 0.0:
        outline = [x0, y0, x1, y0, x1, y1, x0, y1]
        return Geometry("box", [x0, y0, x1 - x0, y1 - y0], area, outline)
    corners = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
    corners = rotate_points(corners, rotation, (x0 + x1) / 2, (y0 + y1) / 2)
    return Geometry(
        "box", _bounds(corners), area, _flat(corners), rotated=True,
        extra={"rotation": rotation},
    )  # fmt: skip


def polygon(shape: dict, ref: ShapeRef, width: int, height: int) -> Geometry:
    raw = shape.get("@points")
    if not isinstance(raw, str):
        raise ShapeError(f"{ref}: attribute points is missing")
    points = parse_points(raw, ref)
    _check_points(points, width, height, ref)
    if len(points) < 3:
        raise EmptyShape(f"polygon with {len(points)} points")
    area = polygon_area(points)
    if area <= 0:
        raise EmptyShape("polygon with zero area")
    return Geometry("polygon", _bounds(points), area, _flat(points))


def ellipse_points(cx: float, cy: float, rx: float, ry: float, rotation: float) -> list:
    circumference = math.pi * (3 * (rx + ry) - math.sqrt((3 * rx + ry) * (rx + 3 * ry)))
    n = int(circumference / ELLIPSE_PIXELS_PER_POINT)
    n = min(ELLIPSE_MAX_POINTS, max(ELLIPSE_MIN_POINTS, n))
    points = [
        (cx + rx * math.cos(2 * math.pi * k / n), cy + ry * math.sin(2 * math.pi * k / n))
        for k in range(n)
    ]
    return rotate_points(points, rotation, cx, cy) if rotation % 360.0 else points


def ellipse(shape: dict, ref: ShapeRef, width: int, height: int) -> Geometry:
    """`<ellipse cx cy rx ry [rotation]>` → polygon outline; exact enclosing box."""
    cx = _check_range(number(shape, "@cx", ref), width, "cx", ref)
    cy = _check_range(number(shape, "@cy", ref), height, "cy", ref)
    rx = _check_range(number(shape, "@rx", ref), width, "rx", ref)
    ry = _check_range(number(shape, "@ry", ref), height, "ry", ref)
    rotation = _rotation(shape, ref)
    if rx <= 0 or ry <= 0:
        raise EmptyShape(f"ellipse with radii {rx:g}, {ry:g}")
    points = ellipse_points(cx, cy, rx, ry, rotation)
    a = math.radians(rotation)
    half_w = math.hypot(rx * math.cos(a), ry * math.sin(a))
    half_h = math.hypot(rx * math.sin(a), ry * math.cos(a))
    bbox = [cx - half_w, cy - half_h, 2 * half_w, 2 * half_h]
    extra = {"rotation": rotation} if rotation % 360.0 else {}
    return Geometry("ellipse", bbox, polygon_area(points), _flat(points), extra=extra)


def _mask_int(shape: dict, key: str, ref: ShapeRef) -> int:
    value = number(shape, key, ref)
    if value != int(value):
        raise ShapeError(f"{ref}: {key[1:]}={shape.get(key)!r} is not a whole number")
    return int(value)


def _rle_counts(shape: dict, ref: ShapeRef, pixels: int) -> list[int]:
    raw = shape.get("@rle")
    if not isinstance(raw, str) or not raw.strip():
        raise ShapeError(f"{ref}: attribute rle is missing")
    if raw.count(",") > pixels:  # more runs than pixels: refuse before parsing them all
        raise ShapeError(f"{ref}: rle has more runs than the {pixels} pixels of its box")
    try:
        counts = [int(c) for c in raw.split(",")]
    except ValueError:
        raise ShapeError(f"{ref}: rle={raw[:40]!r} is not comma-separated whole numbers") from None
    if any(c < 0 for c in counts):
        raise ShapeError(f"{ref}: rle has a negative run length")
    total = sum(counts)
    if total != pixels:
        raise ShapeError(f"{ref}: rle covers {total} pixels, its width x height box has {pixels}")
    return counts


def mask(shape: dict, ref: ShapeRef, width: int, height: int) -> Geometry:
    """`<mask rle left top width height>` → COCO RLE of the whole image, area and box from
    the mask's pixels."""
    import numpy as np

    left, top = _mask_int(shape, "@left", ref), _mask_int(shape, "@top", ref)
    w, h = _mask_int(shape, "@width", ref), _mask_int(shape, "@height", ref)
    if w < 1 or h < 1 or w * h > MAX_MASK_PIXELS:
        raise ShapeError(f"{ref}: width={w}, height={h} is out of range for a mask")
    if left < 0 or top < 0 or left + w > width or top + h > height:
        raise ShapeError(
            f"{ref}: left={left}, top={top}, width={w}, height={h} is out of range: the mask "
            f"must lie inside the {width}x{height} image"
        )
    counts = _rle_counts(shape, ref, w * h)
    values = np.zeros(len(counts), dtype=np.uint8)
    values[1::2] = 1
    tight = np.repeat(values, counts).reshape(h, w)
    area = int(tight.sum())
    if area == 0:
        raise EmptyShape("mask without pixels")
    rows = np.flatnonzero(tight.any(axis=1))
    cols = np.flatnonzero(tight.any(axis=0))
    bbox = [
        float(left + cols[0]),
        float(top + rows[0]),
        float(cols[-1] - cols[0] + 1),
        float(rows[-1] - rows[0] + 1),
    ]
    rle = {"counts": coco_rle_counts(tight, left, top, width, height), "size": [height, width]}
    return Geometry("mask", bbox, float(area), rle=rle)


def coco_rle_counts(tight, left: int, top: int, width: int, height: int) -> list[int]:
    """COCO (column-major, background first) run lengths of a `width` x `height` image that is
    zero except for the binary array `tight` (h, w) placed at (left, top)."""
    import numpy as np

    h, w = tight.shape
    columns = np.zeros((w, height), dtype=np.uint8)  # only the columns the mask spans
    columns[:, top : top + h] = tight.T
    flat = columns.ravel()
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    runs = np.diff(np.concatenate(([0], change, [flat.size]))).tolist()
    before, after = left * height, (width - left - w) * height
    if flat[0]:  # starts with foreground: a background run (of the columns before) first
        runs.insert(0, before)
    else:
        runs[0] += before
    if flat[-1]:
        if after:
            runs.append(after)
    else:
        runs[-1] += after
    return [int(r) for r in runs]


CONVERTERS = {"box": box, "polygon": polygon, "ellipse": ellipse, "mask": mask}


def convert(kind: str, shape: dict, ref: ShapeRef, width: int, height: int) -> Geometry:
    """Geometry of one shape of an AREA_KINDS kind (ShapeError / EmptyShape as above)."""
    return CONVERTERS[kind](shape, ref, width, height)


def decode_coco_rle(rle: dict):
    """COCO uncompressed RLE → (height, width) uint8 array (for readers and the preview)."""
    import numpy as np

    height, width = rle["size"]
    counts = rle["counts"]
    values = np.zeros(len(counts), dtype=np.uint8)
    values[1::2] = 1
    flat = np.repeat(values, counts)
    return flat.reshape(width, height).T
