"""Dataset set-up: the CVAT export in the bucket -> train/val images and labels.

docker-entrypoint.sh runs it before train.py. It writes `$DATASETS_ROOT/images/{train,val}/`
(links to the mounted images) and `$DATASETS_ROOT/labels/{train,val}/`
{%- if cookiecutter.label_format == 'COCO' %} (COCO `labels.json`),
{%- else %} (YOLO `<image stem>.txt`
files; class names in `classes.names`),
{%- endif %}
then adds `num-classes` to train_config.json. It uses only the cvat_dataset API that the
platform's stock runtime has too, so it runs with either runtime.
"""

{%- if cookiecutter.label_format == 'COCO' %}

import json
from pathlib import Path

from config import finalize_config
from cvat_dataset import (
    as_coco,
    create_directory_structure,
    create_test_images,
    create_test_labels,
    create_train_images,
    create_train_labels,
    get_cvat_dataset,
)
from run_control import run_stage, setup_once

LABELS_FILENAME = "labels.json"


def create_labels(labels_path: Path, label_names: list[str], files_with_annotations: dict) -> None:
    """COCO labels of one split (from the CVAT {{ {'classification': 'tags', 'detection': 'boxes', 'segmentation': 'polygons'}[cookiecutter.task] }})."""
    coco = as_coco(label_names, files_with_annotations, dataset_type="{{ cookiecutter.task }}")
    target = Path(labels_path) / LABELS_FILENAME
    partial = target.with_suffix(".json.partial")
    partial.write_text(json.dumps(coco), encoding="utf-8")
    partial.replace(target)
{%- else %}

from pathlib import Path

from config import finalize_config
from cvat_dataset import (
    as_yolo,
    create_directory_structure,
    create_test_images,
    create_test_labels,
    create_train_images,
    create_train_labels,
    get_cvat_dataset,
)
from run_control import run_stage, setup_once

CLASSES_FILENAME = "classes.names"


def create_labels(labels_path: Path, label_names: list[str], files_with_annotations: dict) -> None:
    """YOLO labels of one split: `class x_center y_center width height` (normalised) per box."""
    labels_path = Path(labels_path)
    for stale in labels_path.glob("*.txt"):
        stale.unlink()
    (labels_path / CLASSES_FILENAME).write_text("\n".join(label_names) + "\n", encoding="utf-8")
    for image_path, lines in as_yolo(label_names, files_with_annotations).items():
        label_file = labels_path / f"{Path(image_path).stem}.txt"
        label_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
{%- endif %}


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
