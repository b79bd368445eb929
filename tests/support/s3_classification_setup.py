"""A classification setup.py as templates write it (DESIGN.md §3 cvat_dataset API); the S3
integration test and benchmarks/bench_s3_requests.py copy it into a workspace as setup.py.

Labels go to `<labels dir>/labels.json` as {image basename: label name}, so a test can compare
them with the annotations without knowing COCO."""

import json
from pathlib import Path

import cvat_dataset


def write_labels(labels_path, label_names, files_with_annotations):
    coco = cvat_dataset.as_coco(label_names, files_with_annotations, "classification")
    names = {category["id"]: category["name"] for category in coco["categories"]}
    files = {image["id"]: Path(image["file_name"]).name for image in coco["images"]}
    labels = {files[a["image_id"]]: names[a["category_id"]] for a in coco["annotations"]}
    (Path(labels_path) / "labels.json").write_text(json.dumps(labels, sort_keys=True))


def main():
    _config, label_names, train_data, val_data = cvat_dataset.get_cvat_dataset()
    cvat_dataset.create_directory_structure()
    cvat_dataset.create_train_labels(write_labels, train_data, label_names)
    cvat_dataset.create_test_labels(write_labels, val_data, label_names)
    cvat_dataset.create_train_images(train_data)
    cvat_dataset.create_test_images(val_data)
    print(f"setup: {len(train_data)} train, {len(val_data)} val, labels {label_names}")


if __name__ == "__main__":
    main()
