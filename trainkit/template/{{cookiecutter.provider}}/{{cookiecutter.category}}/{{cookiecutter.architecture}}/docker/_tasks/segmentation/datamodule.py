"""Training and validation data: images with labelled polygons (COCO `labels.json`).

setup.py writes `$DATASETS_ROOT/images/{train,val}/` (the images) and
`$DATASETS_ROOT/labels/{train,val}/labels.json` (COCO: polygon `segmentation`s, and CVAT brush
masks as uncompressed RLE `{"counts": [...], "size": [h, w]}`). Shapes are rasterised with
Pillow into a class mask (0 = background, category k -> k + 1; a later annotation paints over
an earlier one: setup writes them in CVAT's z_order). Replace this module to read other
data; train.py only needs `DataModule.from_args(args, data_root)` and a LightningDataModule.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import lightning as L
import numpy as np
import torch
from PIL import Image, ImageDraw
from torch.utils.data import DataLoader, Dataset

LABELS_FILENAME = "labels.json"

Polygon = list[tuple[float, float]]
Shape = Polygon | dict  # a polygon, or a COCO uncompressed RLE of the whole image
# (image file name, image width, image height, [(mask value, shape), ...])
Sample = tuple[str, int, int, list[tuple[int, Shape]]]


def load_image(path: Path, size: int) -> torch.Tensor:
    """RGB float tensor (3, size, size) in [0, 1]; the network normalises it itself."""
    with Image.open(path) as image:
        rgb = image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
    array = np.asarray(rgb, dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def polygons(segmentation) -> list[Polygon]:
    """COCO polygons, flat (`[[x1, y1, x2, y2, ...], ...]`) or as point pairs
    (`[[x1, y1], [x2, y2], ...]`, what the platform's stock as_coco writes). RLE is skipped."""
    if not isinstance(segmentation, list) or not segmentation:
        return []
    if all(isinstance(point, list) and len(point) == 2 for point in segmentation):
        return [[(float(x), float(y)) for x, y in segmentation]]
    return [
        list(zip(map(float, flat[0::2]), map(float, flat[1::2]), strict=True))
        for flat in segmentation
        if isinstance(flat, list) and len(flat) >= 6
    ]


def segmentation_shapes(segmentation) -> list[Shape]:
    """Polygons, or the uncompressed RLE setup writes for CVAT masks (compressed RLE, which
    setup never writes, is skipped)."""
    if isinstance(segmentation, dict):
        return [segmentation] if isinstance(segmentation.get("counts"), list) else []
    return polygons(segmentation)


def read_samples(labels_file: Path, num_classes: int) -> list[Sample]:
    coco = json.loads(labels_file.read_text(encoding="utf-8"))
    categories = sorted(coco.get("categories", []), key=lambda category: category["id"])
    if len(categories) != num_classes:
        raise ValueError(
            f"{labels_file}: {len(categories)} categories, but num-classes is {num_classes}"
        )
    value_of = {category["id"]: index + 1 for index, category in enumerate(categories)}
    shapes_of: dict[int, list[tuple[int, Shape]]] = defaultdict(list)
    for annotation in coco.get("annotations", []):
        for shape in segmentation_shapes(annotation.get("segmentation")):
            shapes_of[annotation["image_id"]].append((value_of[annotation["category_id"]], shape))
    samples = [
        (image["file_name"], image["width"], image["height"], shapes_of[image["id"]])
        for image in coco.get("images", [])
    ]
    if not samples:
        raise ValueError(f"{labels_file}: no images")
    return samples


def rle_image(rle: dict) -> Image.Image:
    """COCO uncompressed RLE (column-major runs, background first) -> an "L" image, 255 = set."""
    height, width = rle["size"]
    values = np.zeros(len(rle["counts"]), dtype=np.uint8)
    values[1::2] = 255
    return Image.fromarray(np.repeat(values, rle["counts"]).reshape(width, height).T)


def rasterise(shapes: list[tuple[int, Shape]], width: int, height: int, size: int) -> np.ndarray:
    """(size, size) uint8 class mask of shapes given in an image of width x height pixels."""
    mask = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(mask)
    scale_x, scale_y = size / width, size / height
    for value, shape in shapes:
        if isinstance(shape, dict):
            stencil = rle_image(shape).resize((size, size), Image.Resampling.NEAREST)
            mask.paste(value, (0, 0, size, size), stencil)
        else:
            draw.polygon([(x * scale_x, y * scale_y) for x, y in shape], fill=value)
    return np.asarray(mask, dtype=np.uint8)


class SegmentationDataset(Dataset):
    def __init__(self, images_dir: Path, samples: list[Sample], image_size: int, augment: bool):
        self.images_dir = images_dir
        self.samples = samples
        self.image_size = image_size
        self.augment = augment

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        file_name, width, height, shapes = self.samples[index]
        image = load_image(self.images_dir / file_name, self.image_size)
        mask = torch.from_numpy(rasterise(shapes, width, height, self.image_size)).long()
        if self.augment and torch.rand(()) < 0.5:
            image, mask = image.flip(-1), mask.flip(-1)
        return image, mask


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

    def _dataset(self, split: str, augment: bool) -> SegmentationDataset:
        root = Path(self.hparams.data_root)
        samples = read_samples(root / "labels" / split / LABELS_FILENAME, self.hparams.num_classes)
        return SegmentationDataset(
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
