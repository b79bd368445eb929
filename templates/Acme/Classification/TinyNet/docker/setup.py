"""Dataset set-up: the CVAT export in the bucket -> train/val images and labels.

docker-entrypoint.sh runs it before train.py. It writes `$DATASETS_ROOT/images/{train,val}/`
(links to the mounted images) and `$DATASETS_ROOT/labels/{train,val}/` (COCO `labels.json`),
then adds `num-classes` to train_config.json. It uses trainkit's runtime (trainkit_runtime/,
added to the image by `trainkit package` and `trainkit run`), which keeps the platform's
cvat_dataset API (names, signatures, return shapes).
"""

import json
from pathlib import Path

from trainkit_runtime.configuration import finalize_config
from trainkit_runtime.cvat_dataset import (
    as_coco,
    create_directory_structure,
    create_test_images,
    create_test_labels,
    create_train_images,
    create_train_labels,
    get_cvat_dataset,
)
from trainkit_runtime.lifecycle import run_stage, setup_once

LABELS_FILENAME = "labels.json"


def create_labels(labels_path: Path, label_names: list[str], files_with_annotations: dict) -> None:
    """COCO labels of one split (from the CVAT tags)."""
    coco = as_coco(label_names, files_with_annotations, dataset_type="classification")
    target = Path(labels_path) / LABELS_FILENAME
    partial = target.with_suffix(".json.partial")
    partial.write_text(json.dumps(coco), encoding="utf-8")
    partial.replace(target)


def main() -> None:
    config, label_names, train_data, val_data = get_cvat_dataset()
    create_directory_structure()
    create_train_labels(create_labels, train_data, label_names)
    create_test_labels(create_labels, val_data, label_names)
    create_train_images(train_data)
    create_test_images(val_data)
    finalize_config(config, custom={"num-classes": len(label_names)})


if __name__ == "__main__":
    with run_stage("setup"):
        setup_once(main)  # once per node; a restarted container with the same data skips it
