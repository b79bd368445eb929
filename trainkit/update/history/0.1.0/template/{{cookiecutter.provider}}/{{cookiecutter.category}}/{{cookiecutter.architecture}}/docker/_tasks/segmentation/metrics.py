"""Validation metric: mean intersection over union (mIoU).

A confusion matrix over all validation pixels is summed across processes; IoU per class is
TP / (TP + FP + FN) and mIoU averages it over the classes (background included) that occur in
the ground truth or the prediction.
"""

from __future__ import annotations

import torch
from torchmetrics import Metric


class MeanIoU(Metric):
    higher_is_better = True
    full_state_update = False

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.add_state(
            "confusion",
            default=torch.zeros(num_classes, num_classes, dtype=torch.long),
            dist_reduce_fx="sum",
        )

    def update(self, logits: torch.Tensor, masks: torch.Tensor) -> None:
        """logits (B, classes, H, W), masks (B, H, W) with class indices."""
        predicted = logits.argmax(dim=1).flatten()
        truth = masks.flatten()
        cells = truth * self.num_classes + predicted
        self.confusion += torch.bincount(cells, minlength=self.num_classes**2).view(
            self.num_classes, self.num_classes
        )

    def compute(self) -> torch.Tensor:
        confusion = self.confusion.double()
        true_positive = confusion.diag()
        union = confusion.sum(dim=0) + confusion.sum(dim=1) - true_positive
        present = union > 0
        if not present.any():
            return torch.tensor(0.0)
        return (true_positive[present] / union[present]).mean().float()
