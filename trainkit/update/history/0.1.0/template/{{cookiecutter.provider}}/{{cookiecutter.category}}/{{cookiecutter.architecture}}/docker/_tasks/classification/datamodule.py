"""Training and validation data: images with one class each (COCO `labels.json`).

setup.py writes `$DATASETS_ROOT/images/{train,val}/` (the images) and
`$DATASETS_ROOT/labels/{train,val}/labels.json` (COCO; an image's class is the category of its
first annotation, i.e. its CVAT tag). Replace this module to read other data; train.py only
needs `DataModule.from_args(args)` and a LightningDataModule.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import lightning as L
import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

LABELS_FILENAME = "labels.json"


def load_image(path: Path, size: int) -> torch.Tensor:
    """RGB float tensor (3, size, size) in [0, 1]; the network normalises it itself."""
    with Image.open(path) as image:
        rgb = image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
    array = np.asarray(rgb, dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def read_coco_classes(labels_file: Path, num_classes: int) -> list[tuple[str, int]]:
    """(file name, class index) per image; class index = rank of its category id."""
    coco = json.loads(labels_file.read_text(encoding="utf-8"))
    categories = sorted(coco.get("categories", []), key=lambda category: category["id"])
    if len(categories) != num_classes:
        raise ValueError(
            f"{labels_file}: {len(categories)} categories, but num-classes is {num_classes}"
        )
    index_of = {category["id"]: index for index, category in enumerate(categories)}
    class_of: dict[int, int] = {}
    for annotation in coco.get("annotations", []):
        class_of.setdefault(annotation["image_id"], index_of[annotation["category_id"]])
    samples = [
        (image["file_name"], class_of[image["id"]])
        for image in coco.get("images", [])
        if image["id"] in class_of
    ]
    if not samples:
        raise ValueError(f"{labels_file}: no labelled images")
    return samples


class ClassificationDataset(Dataset):
    def __init__(
        self, images_dir: Path, samples: list[tuple[str, int]], image_size: int, augment: bool
    ):
        self.images_dir = images_dir
        self.samples = samples
        self.image_size = image_size
        self.augment = augment

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        file_name, label = self.samples[index]
        image = load_image(self.images_dir / file_name, self.image_size)
        if self.augment and torch.rand(()) < 0.5:
            image = image.flip(-1)
        return image, label


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

    def _dataset(self, split: str, augment: bool) -> ClassificationDataset:
        root = Path(self.hparams.data_root)
        samples = read_coco_classes(
            root / "labels" / split / LABELS_FILENAME, self.hparams.num_classes
        )
        return ClassificationDataset(
            root / "images" / split, samples, self.hparams.image_size, augment
        )

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
            generator=torch.Generator().manual_seed(self.hparams.seed),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)
