"""The {{ cookiecutter.architecture }} network.

A small one-stage grid detector (one box per grid cell).

`Net` is the plain torch module that gets exported. Input: RGB float images in [0, 1], shape
(batch, 3, H, W). Output: the grid (batch, 5 + classes, H / 8, W / 8); per cell the channels are
objectness logit, x and y offset in the cell (sigmoid), width and height relative to the image
(sigmoid), then class logits. `decode` turns it into boxes (and is what an ONNX consumer needs
to reimplement). Replace `Net` with your own network and keep or adapt `decode`/`loss`.
"""

from __future__ import annotations

import argparse

import lightning as L
import torch
import torch.nn.functional as F
from metrics import MeanAP50
from torch import nn

# The validation metric train.py reports and checkpoints are ranked by (higher is better).
SCORE_METRIC = "val_map50"
STRIDE = 8


def conv_block(in_channels: int, out_channels: int, pool: bool = True) -> nn.Sequential:
    layers = [
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    ]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class Net(nn.Module):
    def __init__(self, num_classes: int, width: int = 16):
        super().__init__()
        self.backbone = nn.Sequential(
            conv_block(3, width),
            conv_block(width, 2 * width),
            conv_block(2 * width, 4 * width),
            conv_block(4 * width, 4 * width, pool=False),
            conv_block(4 * width, 4 * width, pool=False),
        )
        self.head = nn.Conv2d(4 * width, 5 + num_classes, kernel_size=1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone((image - 0.5) / 0.25))


def grid_targets(boxes: list[torch.Tensor], rows: int, cols: int, device: torch.device):
    """Objectness (B, rows, cols), box (B, 4, rows, cols) and class (B, rows, cols) targets:
    each box is assigned to the cell holding its centre (the last one wins a shared cell)."""
    objectness = torch.zeros(len(boxes), rows, cols, device=device)
    box_target = torch.zeros(len(boxes), 4, rows, cols, device=device)
    class_target = torch.zeros(len(boxes), rows, cols, dtype=torch.long, device=device)
    for index, image_boxes in enumerate(boxes):
        for label, xc, yc, w, h in image_boxes.tolist():
            col = min(max(int(xc * cols), 0), cols - 1)
            row = min(max(int(yc * rows), 0), rows - 1)
            objectness[index, row, col] = 1.0
            box_target[index, :, row, col] = torch.tensor(
                [xc * cols - col, yc * rows - row, w, h], device=device
            )
            class_target[index, row, col] = int(label)
    return objectness, box_target, class_target


def detection_loss(grid: torch.Tensor, boxes: list[torch.Tensor]) -> torch.Tensor:
    """YOLOv1-style sum: 5 x box MSE + objectness BCE (0.5 x for empty cells) + class CE on
    the cells that hold an object, averaged over the batch."""
    objectness, box_target, class_target = grid_targets(
        boxes, grid.shape[2], grid.shape[3], grid.device
    )
    positive = objectness > 0
    bce = F.binary_cross_entropy_with_logits(grid[:, 0], objectness, reduction="none")
    loss = bce[positive].sum() + 0.5 * bce[~positive].sum()
    if positive.any():
        box_pred = grid[:, 1:5].sigmoid().permute(0, 2, 3, 1)[positive]
        loss = loss + 5.0 * F.mse_loss(
            box_pred, box_target.permute(0, 2, 3, 1)[positive], reduction="sum"
        )
        class_logits = grid[:, 5:].permute(0, 2, 3, 1)[positive]
        loss = loss + F.cross_entropy(class_logits, class_target[positive], reduction="sum")
    return loss / grid.shape[0]


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Indices of the boxes kept by greedy non-maximum suppression, best first."""
    order = scores.argsort(descending=True)
    keep = []
    while order.numel():
        best = order[0]
        keep.append(best)
        rest = order[1:]
        top_left = torch.maximum(boxes[best, :2], boxes[rest, :2])
        bottom_right = torch.minimum(boxes[best, 2:], boxes[rest, 2:])
        intersection = (bottom_right - top_left).clamp(min=0).prod(dim=1)
        area = (boxes[best, 2:] - boxes[best, :2]).prod()
        areas = (boxes[rest, 2:] - boxes[rest, :2]).prod(dim=1)
        iou = intersection / (area + areas - intersection).clamp(min=1e-12)
        order = rest[iou < iou_threshold]
    return torch.stack(keep) if keep else torch.zeros(0, dtype=torch.long, device=boxes.device)


def decode(
    grid: torch.Tensor,
    score_threshold: float = 0.05,
    iou_threshold: float = 0.5,
    max_detections: int = 50,
) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Per image: (boxes (N, 4) xyxy normalised to [0, 1], scores (N,), classes (N,))."""
    batch, _, rows, cols = grid.shape
    xy = grid[:, 1:3].sigmoid()
    wh = grid[:, 3:5].sigmoid()
    class_score, classes = grid[:, 5:].softmax(dim=1).max(dim=1)
    scores = grid[:, 0].sigmoid() * class_score
    col_index = torch.arange(cols, device=grid.device).view(1, 1, cols)
    row_index = torch.arange(rows, device=grid.device).view(1, rows, 1)
    xc = (col_index + xy[:, 0]) / cols
    yc = (row_index + xy[:, 1]) / rows
    boxes = torch.stack(
        [xc - wh[:, 0] / 2, yc - wh[:, 1] / 2, xc + wh[:, 0] / 2, yc + wh[:, 1] / 2], dim=-1
    ).clamp(0, 1)
    results = []
    for index in range(batch):
        image_boxes = boxes[index].reshape(-1, 4)
        image_scores = scores[index].reshape(-1)
        image_classes = classes[index].reshape(-1)
        candidates = image_scores > score_threshold
        image_boxes = image_boxes[candidates]
        image_scores = image_scores[candidates]
        image_classes = image_classes[candidates]
        # Offsetting boxes by class keeps NMS from suppressing across classes.
        keep = nms(image_boxes + image_classes[:, None] * 2.0, image_scores, iou_threshold)
        keep = keep[:max_detections]
        results.append((image_boxes[keep], image_scores[keep], image_classes[keep]))
    return results


class Model(L.LightningModule):
    def __init__(self, num_classes: int, learning_rate: float = 2e-3, width: int = 16):
        super().__init__()
        self.save_hyperparameters()
        self.net = Net(num_classes, width)
        self.val_map50 = MeanAP50()

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Model:
        return cls(num_classes=args.num_classes, learning_rate=args.learning_rate)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image)

    def training_step(self, batch, batch_idx: int):
        images, boxes, _ = batch
        loss = detection_loss(self(images), boxes)
        self.log("train_loss", loss, prog_bar=True, batch_size=len(images))
        return loss

    def validation_step(self, batch, batch_idx: int):
        images, boxes, image_ids = batch
        grid = self(images)
        self.log("val_loss", detection_loss(grid, boxes), batch_size=len(images), sync_dist=True)
        self.val_map50.update(decode(grid), boxes, image_ids)
        self.log(SCORE_METRIC, self.val_map50, prog_bar=True, batch_size=len(images))

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.learning_rate)
