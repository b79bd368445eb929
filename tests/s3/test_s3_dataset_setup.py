"""End to end over a real s3fs mount: synthetic CVAT dataset in a moto bucket → the entrypoint
(STS, mount, classification setup.py, trivial train.py) → symlinks resolve into the mount and
the labels match the annotations. The `s3` fixture unmounts whatever happens."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from benchmarks.bench_s3_requests import parse_request
from tests.s3.conftest import BUCKET, S3Setup, mounted_fstype
from tests.support.s3 import describe_request
from trainkit import vendor
from trainkit.synthetic import write_cvat_dataset

pytestmark = pytest.mark.s3fs


SETUP_SCRIPT = Path(__file__).resolve().parents[1] / "support" / "s3_classification_setup.py"
TRAIN_SCRIPT = """\
import json, os, pathlib, sys
images = pathlib.Path(os.environ["DATASETS_ROOT"]) / "images" / "train"
heads = {p.name: p.read_bytes()[:8].hex() for p in sorted(images.iterdir())}
out = pathlib.Path(os.environ["OUTPUT_DIR"])
out.mkdir(parents=True, exist_ok=True)
(out / "train.json").write_text(json.dumps({"argv": sys.argv[1:], "heads": heads}))
"""


def make_workspace(root: Path) -> Path:
    workspace = root / "workspace"
    workspace.mkdir()
    vendor.install_runtime(workspace)
    shutil.copy(SETUP_SCRIPT, workspace / "setup.py")
    (workspace / "train.py").write_text(TRAIN_SCRIPT)
    (workspace / "train_config.json").write_text(
        json.dumps({"train-split": 0.75, "test-split": 0.25, "epochs": 1})
    )
    (workspace / ".env").write_text("DATASET_ID=5\n")
    return workspace


def annotated_labels(xml_path: Path) -> dict[str, str]:
    return {
        image.get("name"): image.find("tag").get("label")
        for image in ET.parse(xml_path).getroot().iter("image")
    }


def test_entrypoint_sets_up_a_dataset_from_the_mounted_bucket(s3: S3Setup, tmp_path: Path):
    upload = tmp_path / "upload"
    write_cvat_dataset(upload, "5", n_images=24, task="classification", seed=3)
    s3.upload_tree(upload)
    truth = annotated_labels(upload / "datasets" / "5" / "annotations" / "annotations.xml")
    assert len(truth) == 24

    workspace = make_workspace(tmp_path)
    s3.mounts.append(s3.minio_root)
    result = subprocess.run(
        ["bash", "docker-entrypoint.sh"],
        cwd=workspace,
        env=s3.env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert mounted_fstype(s3.minio_root) == "fuse.s3fs"
    assert s3.token not in result.stdout + result.stderr

    datasets = Path(s3.env["DATASETS_ROOT"])
    mounted = os.path.realpath(s3.minio_root / "datasets" / "5")
    seen: dict[str, str] = {}
    for split in ("train", "val"):
        links = sorted((datasets / "images" / split).iterdir())
        labels = json.loads((datasets / "labels" / split / "labels.json").read_text())
        assert sorted(labels) == [link.name for link in links]
        for link in links:
            assert link.is_symlink()
            assert os.path.dirname(os.path.realpath(link)) == mounted
            # the link resolves through the s3fs mount to the uploaded bytes
            assert link.read_bytes() == (upload / "datasets" / "5" / link.name).read_bytes()
        seen.update(labels)
    assert seen == truth
    assert len(list((datasets / "images" / "val").iterdir())) == 6

    train = json.loads((Path(s3.env["OUTPUT_DIR"]) / "train.json").read_text())
    assert len(train["heads"]) == 18
    assert set(train["heads"].values()) == {"89504e470d0a1a0a"}  # PNG signature
    assert any(arg.startswith("--epochs") for arg in train["argv"])

    # The file list came from ListObjectsV2 (24 images + annotations/: one page), and nothing
    # listed the dataset's folders through the mount (a readdir is a 1000-key v1 listing; the
    # only one is mount-s3.sh's look at the bucket root).
    pages: dict[str, int] = {}
    requests = [describe_request(*parse_request(r), BUCKET, pages) for r in s3.moto.requests_seen()]
    file_list = "LIST2 max-keys=1000 prefix=datasets/5/ page=0"
    of_dataset = [r for r in requests if r.startswith("LIST") and "prefix=datasets/5/" in r.split()]
    assert of_dataset == ["LIST1 max-keys=2 prefix=datasets/5/", file_list], requests
    assert [r for r in requests if r.startswith("LIST2")] == [file_list], requests
    readdirs = [r for r in requests if r.startswith("LIST1 max-keys=1000")]
    assert readdirs == ["LIST1 max-keys=1000 prefix="], requests

    # `docker start` of the same container: everything runs again on the live mount.
    again = subprocess.run(
        ["bash", "docker-entrypoint.sh"],
        cwd=workspace,
        env=s3.env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert "already an s3fs mount" in again.stdout
    relinked = {
        p.name for split in ("train", "val") for p in (datasets / "images" / split).iterdir()
    }
    assert relinked == set(truth)
