"""A minimal valid template (runtime files + one architecture) as in-memory files, for the
packaging and validation tests. Hostile cases start from `valid_files()` and break one thing."""

from __future__ import annotations

import json
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path

from trainkit import layout

PROVIDER, CATEGORY, ARCHITECTURE = "Acme", "Classification", "TinyNet"
ARCH = f"{PROVIDER}/{CATEGORY}/{ARCHITECTURE}"
TOP = "train-container-publish"

SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "TinyNet",
    "type": "object",
    "properties": {
        "epochs": {"type": "integer", "minimum": 1, "default": 2},
        "learning-rate": {"type": "number", "exclusiveMinimum": 0, "default": 0.01},
        "optimizer": {"type": "string", "enum": ["adam", "sgd"]},
        "pretrained": {"type": "boolean", "default": False},
        "augment": {"type": "boolean", "default": True},
        "train-split": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.8},
        "test-split": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.2},
    },
    "required": ["epochs"],
}
PRESETS = {"output-dir": "/workspace/output", "images-dir": "/datasets/images"}
CUSTOM = {
    "model_filepath": "/workspace/output/model.pt",
    "score_name": "Accuracy",
    "score_regexp": r"Accuracy: ([0-9]*\.?[0-9]+)",
}
DOCKERFILE = """\
ARG BASE_IMAGE=nvcr.io/nvidia/pytorch:24.01-py3
FROM ${BASE_IMAGE}
ARG TORCH_CUDA_INDEX
WORKDIR /workspace
COPY docker-entrypoint.sh mount-s3.sh /
COPY config.py config_to_args.py dataset.py cvat_dataset.py export.py ./
COPY setup.py train.py requirements.txt ./
COPY presets.json custom.json export_config.json train_config.json ./
COPY .env ./
ENTRYPOINT ["/bin/bash", "/docker-entrypoint.sh"]
"""
SETUP_PY = """\
import json

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


def _labels(path, label_names, files_with_annotations):
    coco = as_coco(label_names, files_with_annotations, dataset_type="classification")
    (path / "labels.json").write_text(json.dumps(coco))


if __name__ == "__main__":
    config, label_names, train_data, val_data = get_cvat_dataset()
    create_directory_structure()
    create_train_labels(_labels, train_data, label_names)
    create_test_labels(_labels, val_data, label_names)
    create_train_images(train_data)
    create_test_images(val_data)
    finalize_config(config)
"""
TRAIN_PY = """\
import argparse

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=2)
    args, _ = parser.parse_known_args()
    print(f"Accuracy: {0.5:.3f}")
"""


def root_files() -> dict[str, bytes]:
    """Stand-ins for the files the platform requires at the template root (it never runs them;
    content does not matter to validation)."""
    files = {}
    for name in layout.ROOT_FILES:
        if name.endswith(".sh"):
            files[name] = b"#!/usr/bin/env bash\nset -euo pipefail\n"
        else:
            files[name] = f'"""stand-in for {name}"""\n'.encode()
    return files


def architecture_files() -> dict[str, bytes]:
    """Relative to provider/category/architecture/."""

    def js(obj) -> bytes:
        return (json.dumps(obj, indent=2) + "\n").encode()

    return {
        "config/config.jsonschema": js(SCHEMA),
        "config/custom.json": js(CUSTOM),
        "config/presets.json": js(PRESETS),
        "docker/Dockerfile": DOCKERFILE.encode(),
        "docker/setup.py": SETUP_PY.encode(),
        "docker/train.py": TRAIN_PY.encode(),
        "docker/requirements.txt": b"",
        "docker/.env": b"# static environment for the container\n",
    }


def valid_files() -> dict[str, bytes]:
    """Paths relative to the template root (the ZIP's top-level directory)."""
    files = root_files()
    files |= {f"{ARCH}/{rel}": data for rel, data in architecture_files().items()}
    return files


def write_files(base: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        path = base / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


@dataclass
class SourceTree:
    """What `trainkit package` reads: a templates dir (the runtime comes from trainkit)."""

    base: Path
    templates: Path
    arch: Path


def write_source_tree(base: Path) -> SourceTree:
    templates = base / "templates"
    arch = templates / PROVIDER / CATEGORY / ARCHITECTURE
    write_files(arch, architecture_files())
    return SourceTree(base, templates, arch)


def write_zip(path: Path, files: dict[str, bytes], top: str | None = TOP) -> Path:
    """A ZIP holding `files` below `top` (None: at the archive root)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel, data in sorted(files.items()):
            name = f"{top}/{rel}" if top else rel
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return path
