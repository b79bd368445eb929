"""The examples' validation metrics (the score line the platform reads) against references, on
fixed inputs fed the way the examples' model.py feeds them (metric object, update, compute):

- detection mAP@0.5 (Acme/Detection/TinyDet) against pycocotools' COCOeval (bbox, AP at IoU 0.5)
  on 5 images, 4 classes, with misses, duplicates, wrong classes, near-threshold boxes and a
  class that is predicted but has no ground truth;
- segmentation mIoU (Acme/Segmentation/TinySeg) against a hand-computed confusion matrix and
  scikit-learn's jaccard_score;
- classification accuracy (Acme/Classification/TinyNet) against a hand count and scikit-learn.

Differences of definition, and how the comparison handles them:
- Interpolation: ours is all-point AP (area under the precision envelope); COCOeval samples
  the envelope at 101 recall points. With COCOeval's recall grid made dense (100,001 points)
  the two definitions coincide up to the grid's resolution: agreement within 1e-3. With
  COCO's default 101 points the difference is bounded by two rectangle widths of the grid per
  class (the envelope is monotone): agreement within 0.02.
- Area ranges and maxDets: the comparison uses COCOeval's area range "all" and maxDets=100;
  our metric has neither (the example's decoder keeps at most 50 boxes per image).
- Matching: both match greedily by descending score, each prediction to the unmatched
  ground-truth box of its class and image with the highest IoU, a match when IoU >= 0.5; the
  fixture has no equal scores (tie order is an implementation detail of either).
- Classes: both average AP over the classes that have ground truth; a class that is only
  predicted does not count.
- mIoU averages IoU over the classes present in the ground truth or the prediction, background
  (class 0) included; a class absent from both is left out (not counted as 0 or 1).

The metrics are taken from the committed examples (the template baked with defaults;
test_template_new.py keeps them equal to trainkit/template/): detection's own metrics.py, and
for classification and segmentation the torchmetrics objects their model.py logs as the score
(MulticlassAccuracy, MulticlassJaccardIndex)."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import sys
from fractions import Fraction
from types import ModuleType

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from sklearn.metrics import accuracy_score, jaccard_score

from tests.support.repo import EXAMPLES_DIR

SIZE = 100  # images are SIZE x SIZE pixels; the detection model works in [0, 1] coordinates


def example_score_metric(task_dir: str, num_classes: int):
    """The metric object an example's Model logs as SCORE_METRIC (its model.py, loaded with
    the example's docker/ on sys.path like in the image)."""
    docker = EXAMPLES_DIR / "Acme" / task_dir / "docker"
    name = f"example_model_{docker.parent.name.lower()}"
    sys.path.insert(0, str(docker))
    try:
        spec = importlib.util.spec_from_file_location(name, docker / "model.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(docker))
    return getattr(module.Model(num_classes=num_classes), module.SCORE_METRIC)


def load_metrics(task_dir: str) -> ModuleType:
    path = EXAMPLES_DIR / "Acme" / task_dir / "docker" / "metrics.py"
    name = f"example_metrics_{path.parent.parent.name.lower()}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# --- detection: mAP@0.5 -------------------------------------------------------------------

# Ground truth: image -> [(class, x1, y1, x2, y2)] in pixels. Image 4 has no objects.
TRUTH = {
    0: [(0, 10, 10, 40, 40), (1, 50, 50, 90, 90)],
    1: [(0, 5, 5, 30, 30), (0, 60, 10, 95, 45), (2, 20, 60, 50, 95)],
    2: [(1, 10, 50, 40, 80), (2, 55, 55, 85, 85)],
    3: [(0, 30, 30, 70, 70)],
    4: [],
}
# Predictions: image -> [(class, score, x1, y1, x2, y2)]; all scores distinct.
PREDICTIONS = {
    0: [
        (0, 0.95, 11, 11, 41, 41),  # TP
        (0, 0.60, 12, 9, 40, 42),  # duplicate of the same box: FP
        (1, 0.80, 52, 48, 88, 92),  # TP
        (2, 0.30, 10, 10, 40, 40),  # right place, wrong class: FP
    ],
    1: [
        (0, 0.90, 6, 4, 31, 29),  # TP
        (0, 0.40, 47.5, 10, 82.5, 45),  # IoU 0.47 with (60, 10, 95, 45): FP
        (2, 0.70, 22, 62, 52, 97),  # TP
        (0, 0.20, 60, 12, 96, 46),  # lower score, but the unmatched box: TP
    ],
    2: [
        (1, 0.85, 10, 50, 40, 80),  # exact: TP
        (2, 0.50, 64, 55, 94, 85),  # IoU 0.54: TP
        (1, 0.10, 0, 0, 20, 20),  # nothing there: FP
    ],
    3: [(1, 0.55, 30, 30, 70, 70)],  # wrong class: FP, and the class-0 box is missed
    4: [
        (0, 0.65, 10, 10, 30, 30),  # background image: FP
        (3, 0.75, 0, 0, 50, 50),  # class 3 has no ground truth anywhere: not averaged
    ],
}


def our_map50(truth=TRUTH, predictions=PREDICTIONS, batches=((0, 1), (2, 3, 4))) -> float:
    """mAP@0.5 through the example's metric as model.py drives it: per batch, decoded
    detections (xyxy in [0, 1], scores, classes), targets (`class xc yc w h` in [0, 1]) and
    image ids."""
    metric = load_metrics("Detection/TinyDet").MeanAP50()
    for batch in batches:
        detections, targets = [], []
        for image in batch:
            rows = predictions[image]
            boxes = torch.tensor([r[2:] for r in rows], dtype=torch.float32).reshape(-1, 4)
            detections.append(
                (
                    boxes / SIZE,
                    torch.tensor([r[1] for r in rows], dtype=torch.float32),
                    torch.tensor([r[0] for r in rows], dtype=torch.long),
                )
            )
            cxcywh = [
                (c, (x1 + x2) / 2 / SIZE, (y1 + y2) / 2 / SIZE, (x2 - x1) / SIZE, (y2 - y1) / SIZE)
                for c, x1, y1, x2, y2 in truth[image]
            ]
            targets.append(torch.tensor(cxcywh, dtype=torch.float32).reshape(-1, 5))
        metric.update(detections, targets, torch.tensor(batch))
    return float(metric.compute())


def coco_map50(recall_points: int = 101, truth=TRUTH, predictions=PREDICTIONS) -> float:
    """COCOeval's AP at IoU 0.5 (area 'all', maxDets 100), averaged over the classes with
    ground truth, on a recall grid of `recall_points` points (COCO's default: 101)."""
    images = [{"id": image, "width": SIZE, "height": SIZE} for image in truth]
    annotations = [
        {
            "id": index,
            "image_id": image,
            "category_id": c + 1,
            "bbox": [x1, y1, x2 - x1, y2 - y1],
            "area": (x2 - x1) * (y2 - y1),
            "iscrowd": 0,
        }
        for index, (image, (c, x1, y1, x2, y2)) in enumerate(
            ((i, box) for i, boxes in truth.items() for box in boxes), start=1
        )
    ]
    classes = {c for boxes in truth.values() for c, *_ in boxes}
    classes |= {c for rows in predictions.values() for c, *_ in rows}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        ground_truth = COCO()
        ground_truth.dataset = {
            "images": images,
            "annotations": annotations,
            "categories": [{"id": c + 1, "name": str(c)} for c in sorted(classes)],
        }
        ground_truth.createIndex()
        results = ground_truth.loadRes(
            [
                {
                    "image_id": i,
                    "category_id": c + 1,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "score": s,
                }
                for i, rows in predictions.items()
                for c, s, x1, y1, x2, y2 in rows
            ]
        )
        evaluator = COCOeval(ground_truth, results, iouType="bbox")
        evaluator.params.iouThrs = np.array([0.5])
        evaluator.params.recThrs = np.linspace(0.0, 1.0, recall_points)
        evaluator.evaluate()
        evaluator.accumulate()
    # precision[T, R, K, A, M]: IoU 0.5, every recall point, each class, area "all", 100 dets.
    assert evaluator.params.areaRngLbl[0] == "all" and evaluator.params.maxDets[-1] == 100
    precision = evaluator.eval["precision"][0, :, :, 0, -1]
    per_class = [precision[:, k].mean() for k in range(precision.shape[1]) if precision[0, k] > -1]
    return float(np.mean(per_class))


def test_map50_agrees_with_cocoeval_under_all_point_interpolation():
    ours = our_map50()
    assert ours == pytest.approx(coco_map50(recall_points=100_001), abs=1e-3)
    # By hand: class 0 (4 boxes) ranks TP TP FP FP FP TP: envelope 1 up to recall 1/2, then
    # 1/2 up to 3/4: AP 0.625; classes 1 and 2: both boxes found before any FP: AP 1.
    assert ours == pytest.approx((0.625 + 1 + 1) / 3, abs=1e-6)


def test_map50_agrees_with_cocoeval_default_101_points_within_the_interpolation_bound():
    assert our_map50() == pytest.approx(coco_map50(), abs=0.02)


def test_map50_hand_computed_cases():
    # Class 0 alone: a TP (score 0.9), an FP (0.8), a TP (0.7) over 2 boxes: precision 1, 1/2,
    # 2/3 at recall 1/2, 1/2, 1: envelope 1 up to recall 1/2, then 2/3: AP = 1/2 + 1/3 = 5/6.
    truth = {0: [(0, 0, 0, 10, 10), (0, 50, 50, 60, 60)]}
    predictions = {0: [(0, 0.9, 0, 0, 10, 10), (0, 0.8, 20, 20, 30, 30), (0, 0.7, 50, 50, 60, 60)]}
    assert our_map50(truth, predictions, batches=((0,),)) == pytest.approx(5 / 6, abs=1e-6)
    # Perfect predictions: 1; no predictions: 0; a duplicate ranked first does not count twice.
    perfect = {0: [(0, 0.9, 0, 0, 10, 10), (0, 0.8, 50, 50, 60, 60)]}
    assert our_map50(truth, perfect, batches=((0,),)) == pytest.approx(1.0)
    assert our_map50(truth, {0: []}, batches=((0,),)) == 0.0
    duplicate = {0: [(0, 0.9, 0, 0, 10, 10), (0, 0.8, 0, 0, 10, 10)]}
    assert our_map50(truth, duplicate, batches=((0,),)) == pytest.approx(0.5)


def test_map50_does_not_depend_on_how_images_are_batched():
    assert our_map50(batches=((0,), (1,), (2,), (3,), (4,))) == pytest.approx(our_map50())


# --- segmentation: mIoU --------------------------------------------------------------------

# Two 3x4 masks, classes 0 (background), 1, 2; class 3 exists in the model but in neither mask.
TRUTH_MASKS = [
    [[0, 0, 1, 1],
     [0, 0, 1, 1],
     [2, 2, 0, 0]],
    [[1, 1, 1, 0],
     [2, 2, 0, 0],
     [2, 2, 0, 0]],
]  # fmt: skip
PREDICTED_MASKS = [
    [[0, 0, 0, 1],
     [0, 0, 1, 0],
     [2, 0, 0, 0]],
    [[1, 0, 0, 0],
     [2, 2, 2, 0],
     [2, 0, 0, 0]],
]  # fmt: skip
# Counted by hand: CONFUSION[truth][predicted] over the 24 pixels.
CONFUSION = [
    [10, 0, 1, 0],
    [4, 3, 0, 0],
    [2, 0, 4, 0],
    [0, 0, 0, 0],
]
# IoU = TP / (row + column - TP): class 0: 10/(11+16-10) = 10/17, class 1: 3/(7+3-3) = 3/7,
# class 2: 4/(6+5-4) = 4/7; class 3 is absent from both and left out. (Without background the
# mean would be 1/2; with class 3 counted as 0, 0.397.)
EXPECTED_MIOU = (Fraction(10, 17) + Fraction(3, 7) + Fraction(4, 7)) / 3


def one_hot_logits(masks: list[list[list[int]]], num_classes: int) -> torch.Tensor:
    """Logits (B, classes, H, W) whose arg-max is `masks`."""
    labels = torch.tensor(masks)
    return torch.nn.functional.one_hot(labels, num_classes).permute(0, 3, 1, 2).float()


def test_miou_matches_the_hand_computed_confusion_matrix():
    truth = np.array(TRUTH_MASKS).ravel()
    predicted = np.array(PREDICTED_MASKS).ravel()
    counted = np.zeros((4, 4), dtype=int)
    np.add.at(counted, (truth, predicted), 1)
    assert counted.tolist() == CONFUSION  # the fixture is what the comment says

    metric = example_score_metric("Segmentation/TinySeg", num_classes=3)  # + background
    for index in range(2):  # one image per batch, as validation batches arrive
        metric.update(
            one_hot_logits(PREDICTED_MASKS[index : index + 1], 4),
            torch.tensor(TRUTH_MASKS[index : index + 1]),
        )
    assert metric.confmat.tolist() == CONFUSION
    miou = float(metric.compute())
    assert miou == pytest.approx(float(EXPECTED_MIOU), abs=1e-6)
    reference = jaccard_score(truth, predicted, labels=[0, 1, 2], average="macro")
    assert miou == pytest.approx(reference, abs=1e-6)


# --- classification: accuracy --------------------------------------------------------------


def test_accuracy_is_the_fraction_of_correct_arg_max_over_all_batches():
    labels = [0, 1, 2, 2, 1, 0, 0, 2, 1, 1]
    predicted = [0, 2, 2, 2, 1, 1, 0, 0, 1, 1]  # 7 of 10 right
    logits = torch.nn.functional.one_hot(torch.tensor(predicted), 3).float()
    metric = example_score_metric("Classification/TinyNet", num_classes=3)
    metric.update(logits[:4], torch.tensor(labels[:4]))  # batches of different sizes
    metric.update(logits[4:], torch.tensor(labels[4:]))
    accuracy = float(metric.compute())
    assert accuracy == pytest.approx(0.7)
    assert accuracy == pytest.approx(accuracy_score(labels, predicted))


def test_examples_print_these_metrics_as_their_score():
    """The metrics tested here are the ones the examples log as their score."""
    for task, metric in (
        ("Classification/TinyNet", "MulticlassAccuracy"),
        ("Detection/TinyDet", "MeanAP50"),
        ("Segmentation/TinySeg", "MulticlassJaccardIndex"),
    ):
        assert type(example_score_metric(task, num_classes=3)).__name__ == metric, task
