"""The TinyNet network.

A small CNN image classifier.

`Net` is the plain torch module that gets exported (input: RGB float images in [0, 1], shape
(batch, 3, H, W); output: class logits). `Model` wraps it for Lightning. To use your own
network, replace `Net` (keep its input/output contract; the platform exports it with the values
of its ONNX export form, by default one input of shape 1x3x224x224).
"""

from __future__ import annotations

import argparse

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

# The validation metric train.py reports and checkpoints are ranked by (higher is better).
SCORE_METRIC = "val_accuracy"


def conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class Net(nn.Module):
    def __init__(self, num_classes: int, width: int = 16):
        super().__init__()
        self.features = nn.Sequential(
            conv_block(3, width),
            conv_block(width, 2 * width),
            conv_block(2 * width, 4 * width),
        )
        self.head = nn.Linear(4 * width, num_classes)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        features = self.features((image - 0.5) / 0.25)
        return self.head(features.mean(dim=(2, 3)))


class Model(L.LightningModule):
    def __init__(self, num_classes: int, learning_rate: float = 1e-3, width: int = 16):
        super().__init__()
        self.save_hyperparameters()
        self.net = Net(num_classes, width)
        # top-1 accuracy over all validation images, summed across processes
        self.val_accuracy = MulticlassAccuracy(num_classes, average="micro")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Model:
        return cls(num_classes=args.num_classes, learning_rate=args.learning_rate)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int):
        images, labels = batch
        loss = F.cross_entropy(self(images), labels)
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int):
        images, labels = batch
        logits = self(images)
        self.log("val_loss", F.cross_entropy(logits, labels), sync_dist=True)
        self.val_accuracy.update(logits, labels)
        self.log(SCORE_METRIC, self.val_accuracy, prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.learning_rate)
