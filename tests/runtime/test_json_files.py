"""json_files.write_json_atomically: the bytes of json.dumps, written in pieces, atomically."""

from __future__ import annotations

import json
import math

import pytest

from trainkit_runtime import json_files


def coco_like(n: int) -> dict:
    return {
        "categories": [{"id": 1, "name": 'ünï "q"'}],
        "images": [{"id": i, "file_name": f"{i}.jpg", "height": 4, "width": 5.5} for i in range(n)],
        "annotations": [{"id": i, "image_id": i, "bbox": [0, 1.25, 2, 3]} for i in range(n)],
        "empty": [],
        "info": {"n": n},
    }


@pytest.mark.parametrize("n", [0, 1, 3, 7, 25])
def test_pieces_are_exactly_json_dumps(n):
    value = coco_like(n)
    assert "".join(json_files.iter_json(value, chunk=3)) == json.dumps(value)


@pytest.mark.parametrize("value", [[1, 2, 3] * 5, {1: "int key"}, "text", None, {"a": (1, 2)}])
def test_other_values_fall_back_to_one_dumps(value):
    assert "".join(json_files.iter_json(value, chunk=2)) == json.dumps(value)


def test_write_is_atomic_and_refuses_nan(tmp_path):
    target = tmp_path / "labels.json"
    json_files.write_json_atomically(target, coco_like(30))
    assert json.loads(target.read_text(encoding="utf-8")) == json.loads(json.dumps(coco_like(30)))
    bad = coco_like(2)
    bad["annotations"][1]["bbox"][0] = math.nan
    with pytest.raises(ValueError, match="not JSON compliant"):
        json_files.write_json_atomically(target, bad)
    assert json.loads(target.read_text(encoding="utf-8"))["info"] == {"n": 30}  # old file kept
    assert [p.name for p in tmp_path.iterdir()] == ["labels.json"]  # no temp file left
