"""cvat_shapes: CVAT's RLE, rotated boxes and ellipses against independent computations
(pycocotools, CVAT's own rotation formula, datumaro's mask decoding convention)."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from trainkit_runtime import cvat_shapes as cs

mask_utils = pytest.importorskip("pycocotools.mask")
REF = cs.ShapeRef("x.png", "mask", 0, "a")


def cvat_rle(bitmap: np.ndarray) -> str:
    """CVAT's encoding of a tight (h, w) bitmap: row-major runs, background first (written
    independently of the runtime, after CVAT's MaskConverter.rle)."""
    flat = bitmap.reshape(-1).tolist()
    runs, current, count = [], 0, 0
    for value in flat:
        if value == current:
            count += 1
        else:
            runs.append(count)
            current, count = value, 1
    runs.append(count)
    return ", ".join(map(str, runs))


@pytest.mark.parametrize("seed", range(12))
def test_cvat_mask_rle_decodes_like_pycocotools_would_encode(seed):
    rng = random.Random(seed)
    width, height = rng.randint(1, 40), rng.randint(1, 40)
    w, h = rng.randint(1, width), rng.randint(1, height)
    left, top = rng.randint(0, width - w), rng.randint(0, height - h)
    tight = (np.random.default_rng(seed).random((h, w)) < rng.random()).astype(np.uint8)
    if not tight.any():
        tight[rng.randrange(h), rng.randrange(w)] = 1
    shape = {"@rle": cvat_rle(tight), "@left": str(left), "@top": str(top),
             "@width": str(w), "@height": str(h)}  # fmt: skip
    geometry = cs.mask(shape, REF, width, height)
    full = np.zeros((height, width), dtype=np.uint8)
    full[top : top + h, left : left + w] = tight
    got = mask_utils.decode(mask_utils.frPyObjects(geometry.rle, height, width))
    assert np.array_equal(got, full)
    assert geometry.area == float(mask_utils.area(mask_utils.encode(np.asfortranarray(full))))
    expected_box = mask_utils.toBbox(mask_utils.encode(np.asfortranarray(full))).tolist()
    assert geometry.bbox == expected_box
    assert np.array_equal(cs.decode_coco_rle(geometry.rle), full)


def test_rotated_box_uses_cvats_formula():
    shape = {"@xtl": "10", "@ytl": "10", "@xbr": "30", "@ybr": "20", "@rotation": "30"}
    geometry = cs.box(shape, REF, 100, 100)
    a = math.radians(30)
    expected = []
    for x, y in ((10, 10), (30, 10), (30, 20), (10, 20)):  # CVAT: about the centre (20, 15)
        dx, dy = x - 20, y - 15
        expected += [
            20 + math.cos(a) * dx - math.sin(a) * dy,
            15 + math.sin(a) * dx + math.cos(a) * dy,
        ]
    assert geometry.polygon == pytest.approx(expected)
    xs, ys = expected[0::2], expected[1::2]
    assert geometry.bbox == pytest.approx([min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)])
    assert geometry.area == pytest.approx(200)
    assert geometry.extra == {"rotation": 30.0}


def test_rotation_360_is_no_rotation():
    shape = {"@xtl": "1", "@ytl": "2", "@xbr": "5", "@ybr": "9", "@rotation": "360"}
    geometry = cs.box(shape, REF, 10, 10)
    assert geometry.bbox == [1, 2, 4, 7] and not geometry.rotated


def test_ellipse_box_is_exact_and_outline_close():
    shape = {"@cx": "50", "@cy": "40", "@rx": "20", "@ry": "10", "@rotation": "90"}
    geometry = cs.ellipse(shape, REF, 100, 100)
    assert geometry.bbox == pytest.approx([40, 20, 20, 40])  # turned 90°: rx along y
    assert geometry.area == pytest.approx(math.pi * 200, rel=0.01)
    points = np.asarray(geometry.polygon).reshape(-1, 2)
    # every outline point is on the rotated ellipse
    u, v = (points[:, 1] - 40) / 20, (points[:, 0] - 50) / 10
    assert np.allclose(u**2 + v**2, 1)


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ({"@xtl": "nan", "@ytl": "0", "@xbr": "1", "@ybr": "1"}, "xtl='nan' is not a finite"),
        ({"@xtl": "0", "@ytl": "0", "@xbr": "x", "@ybr": "1"}, "xbr='x' is not a number"),
        ({"@xtl": "0", "@ytl": "0", "@xbr": "1"}, "attribute ybr is missing"),
        ({"@xtl": "-500", "@ytl": "0", "@xbr": "1", "@ybr": "1"}, "xtl=-500 is out of range"),
    ],
)
def test_bad_box_numbers(shape, message):
    with pytest.raises(cs.ShapeError, match=message) as err:
        cs.box(shape, cs.ShapeRef("x.png", "box", 2, "dog"), 100, 100)
    assert "image 'x.png': <box> #3 (label 'dog')" in str(err.value)


def test_degenerate_shapes_are_empty_not_errors():
    with pytest.raises(cs.EmptyShape):
        cs.box({"@xtl": "5", "@ytl": "0", "@xbr": "5", "@ybr": "1"}, REF, 10, 10)
    with pytest.raises(cs.EmptyShape):
        cs.polygon({"@points": "0,0;1,1;2,2"}, REF, 10, 10)
    with pytest.raises(cs.EmptyShape):
        cs.mask({"@rle": "4", "@left": "0", "@top": "0", "@width": "2", "@height": "2"}, REF, 4, 4)


def test_mask_work_is_bounded_before_parsing():
    shape = {"@rle": ",".join(["1"] * 10), "@left": "0", "@top": "0", "@width": "2",
             "@height": "2"}  # fmt: skip
    with pytest.raises(cs.ShapeError, match="more runs than the 4 pixels"):
        cs.mask(shape, REF, 10, 10)
