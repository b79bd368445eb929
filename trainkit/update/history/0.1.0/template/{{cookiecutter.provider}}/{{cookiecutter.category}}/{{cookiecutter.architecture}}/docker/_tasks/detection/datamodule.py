"""Training and validation data: images with labelled boxes ({{ cookiecutter.label_format }} labels).

setup.py writes `$DATASETS_ROOT/images/{train,val}/` (the images) and
{%- if cookiecutter.label_format == 'YOLO' %}
`$DATASETS_ROOT/labels/{train,val}/<image stem>.txt` (YOLO: `class x_center y_center width height`
per line, normalised to [0, 1]; an image without a label file has no objects).
{%- else %}
`$DATASETS_ROOT/labels/{train,val}/labels.json` (COCO: `bbox` = [x, y, width, height] in pixels).
{%- endif %}
Boxes are handed to the model as (N, 5) float tensors `class x_center y_center width height`,
normalised. Replace this module to read other data; train.py only needs
`DataModule.from_args(args, data_root)` and a LightningDataModule.
"""

from __future__ import annotations

import argparse
{%- if cookiecutter.label_format == 'YOLO' %}
import os
{%- else %}
import json
from collections import defaultdict
{%- endif %}
from pathlib import Path

import lightning as L
import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

{%- if cookiecutter.label_format == 'YOLO' %}

IMAGE_SUFFIXES = {".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp"}
{%- else %}

LABELS_FILENAME = "labels.json"
{%- endif %}

Sample = tuple[str, np.ndarray]  # (image file name, (N, 5) boxes: class xc yc w h)


def load_image(path: Path, size: int) -> torch.Tensor:
    """RGB float tensor (3, size, size) in [0, 1]; the network normalises it itself."""
    with Image.open(path) as image:
        rgb = image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
    array = np.asarray(rgb, dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()
{%- if cookiecutter.label_format == 'YOLO' %}


def read_yolo_file(label_file: Path, num_classes: int) -> np.ndarray:
    rows = []
    for line_number, line in enumerate(label_file.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 5:
            raise ValueError(
                f"{label_file}:{line_number}: expected 'class xc yc w h', got {line!r}"
            )
        label = int(float(fields[0]))
        if not 0 <= label < num_classes:
            raise ValueError(
                f"{label_file}:{line_number}: class {label} not in 0..{num_classes - 1}"
            )
        rows.append([label, *map(float, fields[1:])])
    return np.asarray(rows, dtype=np.float32).reshape(-1, 5)


def read_samples(images_dir: Path, labels_dir: Path, num_classes: int) -> list[Sample]:
    """Every image of the split, with the boxes of its `<stem>.txt` (none if absent)."""
    names = sorted(
        entry.name
        for entry in os.scandir(images_dir)
        if Path(entry.name).suffix.lower() in IMAGE_SUFFIXES
    )
    if not names:
        raise ValueError(f"{images_dir}: no images")
    samples = []
    for name in names:
        label_file = labels_dir / f"{Path(name).stem}.txt"
        boxes = (
            read_yolo_file(label_file, num_classes)
            if label_file.exists()
            else np.zeros((0, 5), dtype=np.float32)
        )
        samples.append((name, boxes))
    return samples
{%- else %}


def read_samples(images_dir: Path, labels_dir: Path, num_classes: int) -> list[Sample]:
    """The images of labels.json with their boxes, normalised to the image size."""
    labels_file = labels_dir / LABELS_FILENAME
    coco = json.loads(labels_file.read_text(encoding="utf-8"))
    categories = sorted(coco.get("categories", []), key=lambda category: category["id"])
    if len(categories) != num_classes:
        raise ValueError(
            f"{labels_file}: {len(categories)} categories, but num-classes is {num_classes}"
        )
    index_of = {category["id"]: index for index, category in enumerate(categories)}
    sizes = {image["id"]: (image["width"], image["height"]) for image in coco.get("images", [])}
    boxes_of: dict[int, list[list[float]]] = defaultdict(list)
    for annotation in coco.get("annotations", []):
        x, y, w, h = annotation["bbox"]
        width, height = sizes[annotation["image_id"]]
        boxes_of[annotation["image_id"]].append(
            [
                index_of[annotation["category_id"]],
                (x + w / 2) / width,
                (y + h / 2) / height,
                w / width,
                h / height,
            ]
        )
    samples = [
        (image["file_name"], np.asarray(boxes_of[image["id"]], dtype=np.float32).reshape(-1, 5))
        for image in coco.get("images", [])
    ]
    if not samples:
        raise ValueError(f"{labels_file}: no images")
    return samples
{%- endif %}


class DetectionDataset(Dataset):
    def __init__(self, images_dir: Path, samples: list[Sample], image_size: int, augment: bool):
        self.images_dir = images_dir
        self.samples = samples
        self.image_size = image_size
        self.augment = augment

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        file_name, boxes = self.samples[index]
        image = load_image(self.images_dir / file_name, self.image_size)
        boxes = torch.from_numpy(boxes.copy())
        if self.augment and torch.rand(()) < 0.5:
            image = image.flip(-1)
            boxes[:, 1] = 1.0 - boxes[:, 1]
        return image, boxes, index


def collate(batch: list[tuple[torch.Tensor, torch.Tensor, int]]):
    """(images (B, 3, H, W), list of B box tensors, image indices (B,))."""
    images, boxes, indices = zip(*batch, strict=True)
    return torch.stack(images), list(boxes), torch.tensor(indices)


class DataModule(L.LightningDataModule):
    def __init__(
        self,
        data_root: str,
        num_classes: int,
        image_size: int = 64,
        batch_size: int = 16,
        workers: int = 2,
        seed: int = 42,
        augment: bool = False,
    ):
        super().__init__()
        self.save_hyperparameters()

    @classmethod
    def from_args(cls, args: argparse.Namespace, data_root: str) -> DataModule:
        return cls(
            data_root=data_root,
            num_classes=args.num_classes,
            image_size=args.image_size,
            batch_size=args.batch_size,
            workers=args.workers,
            seed=args.seed,
            augment=getattr(args, "augment", False),
        )

    def _dataset(self, split: str, augment: bool) -> DetectionDataset:
        root = Path(self.hparams.data_root)
        images_dir = root / "images" / split
        samples = read_samples(images_dir, root / "labels" / split, self.hparams.num_classes)
        return DetectionDataset(images_dir, samples, self.hparams.image_size, augment)

    def setup(self, stage: str) -> None:
        if stage == "fit":
            self.train_set = self._dataset("train", augment=self.hparams.augment)
        self.val_set = self._dataset("val", augment=False)

    def _loader(self, dataset: Dataset, shuffle: bool) -> DataLoader:
        workers = self.hparams.workers
        return DataLoader(
            dataset,
            batch_size=self.hparams.batch_size,
            shuffle=shuffle,
            num_workers=workers,
            persistent_workers=workers > 0,
            collate_fn=collate,
            generator=torch.Generator().manual_seed(self.hparams.seed),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)
