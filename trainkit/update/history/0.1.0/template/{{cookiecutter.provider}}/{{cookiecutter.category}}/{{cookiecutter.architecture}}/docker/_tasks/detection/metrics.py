"""Validation metric: mAP@0.5 (COCO-style matching, all-point AP).

A prediction is a true positive when its IoU with a not yet matched ground-truth box of the same
class in the same image is at least 0.5 (the best such box is taken); predictions are visited
in descending score order. AP is the area under the precision envelope over recall (all-point
interpolation); mAP averages AP over the classes that have ground-truth boxes.
"""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one xyxy box with each row of boxes (M, 4)."""
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    intersection = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return intersection / np.maximum(area + areas - intersection, 1e-12)


def average_precision(true_positive: np.ndarray, num_ground_truth: int) -> float:
    """All-point interpolated AP from TP flags of score-sorted predictions."""
    if num_ground_truth == 0:
        return 0.0
    tp = np.cumsum(true_positive)
    fp = np.cumsum(~true_positive)
    recall = np.concatenate([[0.0], tp / num_ground_truth, [1.0]])
    precision = np.concatenate([[0.0], tp / np.maximum(tp + fp, 1), [0.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.nonzero(recall[1:] != recall[:-1])[0]
    return float(np.sum((recall[steps + 1] - recall[steps]) * precision[steps + 1]))


def mean_average_precision(
    predictions: np.ndarray, targets: np.ndarray, iou_threshold: float = 0.5
) -> float:
    """predictions (K, 7): image, class, score, x1, y1, x2, y2; targets (M, 6): image, class,
    x1, y1, x2, y2. Returns mAP over the classes present in targets (0.0 without targets)."""
    aps = []
    for label in np.unique(targets[:, 1]):
        truth = targets[targets[:, 1] == label]
        guesses = predictions[predictions[:, 1] == label]
        guesses = guesses[np.argsort(-guesses[:, 2], kind="stable")]
        matched = np.zeros(len(truth), dtype=bool)
        true_positive = np.zeros(len(guesses), dtype=bool)
        for index, guess in enumerate(guesses):
            candidates = np.nonzero((truth[:, 0] == guess[0]) & ~matched)[0]
            if candidates.size == 0:
                continue
            ious = box_iou(guess[3:7], truth[candidates, 2:6])
            best = int(np.argmax(ious))
            if ious[best] >= iou_threshold:
                matched[candidates[best]] = True
                true_positive[index] = True
        aps.append(average_precision(true_positive, len(truth)))
    return float(np.mean(aps)) if aps else 0.0


def cxcywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    center, size = boxes[..., :2], boxes[..., 2:4]
    return torch.cat([center - size / 2, center + size / 2], dim=-1)


class MeanAP50(Metric):
    """mAP@0.5 over all validation images; predictions and targets are gathered across
    processes before computing, so the value is the same under DDP."""

    higher_is_better = True
    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("predictions", default=[], dist_reduce_fx="cat")
        self.add_state("targets", default=[], dist_reduce_fx="cat")

    def update(
        self,
        detections: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
        targets: list[torch.Tensor],
        image_ids: torch.Tensor,
    ) -> None:
        """detections: per image (xyxy boxes, scores, classes); targets: per image (N, 5)
        `class xc yc w h` tensors; image_ids: a unique id per image."""
        for image_id, (boxes, scores, classes), truth in zip(
            image_ids.tolist(), detections, targets, strict=True
        ):
            ids = torch.full((len(scores), 1), float(image_id), device=boxes.device)
            self.predictions.append(
                torch.cat([ids, classes[:, None].float(), scores[:, None], boxes], dim=1)
            )
            truth = truth.to(boxes.device)
            truth_ids = torch.full((len(truth), 1), float(image_id), device=boxes.device)
            self.targets.append(
                torch.cat([truth_ids, truth[:, :1], cxcywh_to_xyxy(truth[:, 1:5])], dim=1)
            )

    def compute(self) -> torch.Tensor:
        if not self.targets:
            return torch.tensor(0.0)
        predictions = dim_zero_cat(self.predictions).detach().cpu().double().numpy()
        targets = dim_zero_cat(self.targets).detach().cpu().double().numpy()
        return torch.tensor(mean_average_precision(predictions, targets), dtype=torch.float32)
