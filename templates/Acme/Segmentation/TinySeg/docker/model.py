"""The TinySeg network.

A small encoder-decoder (U-Net-like) for semantic segmentation.

`Net` is the plain torch module that gets exported. Input: RGB float images in [0, 1], shape
(batch, 3, H, W) with H and W multiples of 4. Output: mask logits (batch, 1 + classes, H, W);
channel 0 is background, channel k + 1 the k-th label; arg-max over channels gives the mask.
Replace `Net` with your own network (keep the input/output contract; the platform exports it
with the values of its ONNX export form, by default one input of shape 1x3x224x224).
"""

from __future__ import annotations

import argparse

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassJaccardIndex

# The validation metric train.py reports and checkpoints are ranked by (higher is better).
SCORE_METRIC = "val_miou"


def conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class Net(nn.Module):
    def __init__(self, num_classes: int, width: int = 16):
        super().__init__()
        self.encode1 = conv_block(3, width)
        self.encode2 = conv_block(width, 2 * width)
        self.bottleneck = conv_block(2 * width, 4 * width)
        self.up2 = nn.ConvTranspose2d(4 * width, 2 * width, kernel_size=2, stride=2)
        self.decode2 = conv_block(4 * width, 2 * width)
        self.up1 = nn.ConvTranspose2d(2 * width, width, kernel_size=2, stride=2)
        self.decode1 = conv_block(2 * width, width)
        self.head = nn.Conv2d(width, 1 + num_classes, kernel_size=1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        skip1 = self.encode1((image - 0.5) / 0.25)
        skip2 = self.encode2(F.max_pool2d(skip1, 2))
        features = self.bottleneck(F.max_pool2d(skip2, 2))
        features = self.decode2(torch.cat([self.up2(features), skip2], dim=1))
        features = self.decode1(torch.cat([self.up1(features), skip1], dim=1))
        return self.head(features)


class Model(L.LightningModule):
    def __init__(self, num_classes: int, learning_rate: float = 2e-3, width: int = 16):
        super().__init__()
        self.save_hyperparameters()
        self.net = Net(num_classes, width)
        # mIoU: IoU per class (background included) from a confusion matrix over all
        # validation pixels, summed across processes, averaged over the classes that occur
        self.val_miou = MulticlassJaccardIndex(1 + num_classes, average="macro")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Model:
        return cls(num_classes=args.num_classes, learning_rate=args.learning_rate)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int):
        images, masks = batch
        loss = F.cross_entropy(self(images), masks)
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int):
        images, masks = batch
        logits = self(images)
        self.log("val_loss", F.cross_entropy(logits, masks), sync_dist=True)
        self.val_miou.update(logits, masks)
        self.log(SCORE_METRIC, self.val_miou, prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.learning_rate)
