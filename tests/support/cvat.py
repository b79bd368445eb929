"""Helpers for the dataset runtime tests (trainkit_runtime.dataset, trainkit_runtime.cvat_dataset).

`runtime_fixture` points the modules' roots at temp dirs in-process; `make_workspace` builds an
image-like WORKDIR (the runtime as trainkit installs it into a build context, + a setup.py) for
subprocess runs, as the container would."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from trainkit import vendor

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "dataset" / "data"


def write_xml(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def task_xml(labels, images: str, extra_meta: str = "") -> str:
    label_xml = "".join(
        f"<label><name>{name}</name><color>#000000</color><type>any</type>"
        "<attributes></attributes></label>"
        for name in labels
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<annotations>\n<version>1.1</version>\n'
        f"<meta><task><id>1</id><name>t</name><labels>{label_xml}</labels></task>"
        f"{extra_meta}</meta>\n{images}</annotations>\n"
    )


def tag_image(name: str, label: str, image_id: int = 0, w: int = 64, h: int = 48) -> str:
    return (
        f'<image id="{image_id}" name="{name}" width="{w}" height="{h}">'
        f'<tag label="{label}" source="manual"></tag></image>\n'
    )


@dataclass
class Runtime:
    """In-process runtime with temp roots; `dataset_dir` is $MINIO_ROOT/datasets/<id>."""

    minio: Path
    datasets: Path
    workdir: Path
    dataset_id: str
    dataset: types.ModuleType
    cvat: types.ModuleType
    config: dict = field(default_factory=dict)

    @property
    def dataset_dir(self) -> Path:
        return self.minio / "datasets" / self.dataset_id

    def add_files(self, *names: str) -> list[Path]:
        self.dataset_dir.mkdir(parents=True, exist_ok=True)
        paths = []
        for name in names:
            path = self.dataset_dir / name
            path.write_bytes(b"")
            paths.append(path)
        return paths

    def write_annotations(self, text: str) -> Path:
        return write_xml(self.dataset_dir / "annotations" / "annotations.xml", text)

    def write_config(self, config: dict) -> None:
        (self.workdir / "train_config.json").write_text(json.dumps(config), encoding="utf-8")


def runtime_fixture(tmp_path: Path, monkeypatch) -> Iterator[Runtime]:
    from trainkit_runtime import cvat_dataset, dataset

    minio, datasets, workdir = tmp_path / "minio", tmp_path / "datasets", tmp_path / "work"
    for d in (minio / "datasets", datasets, workdir):
        d.mkdir(parents=True)
    monkeypatch.setenv("DATASET_ID", "1")
    monkeypatch.setenv("MINIO_ROOT", str(minio))
    monkeypatch.setenv("DATASETS_ROOT", str(datasets))
    for var in ("S3_HOST", "S3_BUCKET_NAME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(dataset, "MINIO_ROOT_PATH", str(minio))
    monkeypatch.setattr(dataset, "MOUNTED_DATASETS_ROOT_PATH", str(minio / "datasets"))
    monkeypatch.setattr(dataset, "DATASETS_ROOT_PATH", str(datasets))
    monkeypatch.chdir(workdir)
    dataset.DATA_DIRS.clear()
    rt = Runtime(minio, datasets, workdir, "1", dataset, cvat_dataset)
    rt.write_config({"train-split": 0.75, "test-split": 0.25})
    (workdir / "presets.json").write_text("{}", encoding="utf-8")
    yield rt
    dataset.DATA_DIRS.clear()


@dataclass
class Workspace:
    """An image-like WORKDIR: trainkit's runtime, a setup.py, train_config.json."""

    path: Path
    minio: Path
    datasets: Path

    def env(self, dataset_id: str | None = "1", **extra: str) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("S3_", "DATASET"))}
        env.update(MINIO_ROOT=str(self.minio), DATASETS_ROOT=str(self.datasets), **extra)
        env["PYTHONDONTWRITEBYTECODE"] = "1"  # the WORKDIR stays exactly as built
        if dataset_id is not None:
            env["DATASET_ID"] = dataset_id
        return env

    def run_setup(self, dataset_id: str | None = "1", **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "setup.py"],
            cwd=self.path,
            env=self.env(dataset_id, **extra),
            capture_output=True,
            text=True,
            timeout=300,
        )


def make_workspace(root: Path, setup_py: Path | str, config: dict | None = None) -> Workspace:
    work = root / "workspace"
    work.mkdir(parents=True)
    vendor.install_runtime(work)
    if isinstance(setup_py, Path):
        shutil.copy2(setup_py, work / "setup.py")
    else:
        (work / "setup.py").write_text(setup_py, encoding="utf-8")
    config = {"train-split": 0.8, "test-split": 0.2} if config is None else config
    (work / "train_config.json").write_text(json.dumps(config), encoding="utf-8")
    (work / "presets.json").write_text(json.dumps({"images-dir": "/datasets/images"}), "utf-8")
    minio, datasets = root / "minio", root / "datasets"
    (minio / "datasets").mkdir(parents=True)
    return Workspace(work, minio, datasets)


def tree_snapshot(root: Path) -> dict:
    """{relative path: (kind, size, mtime_ns, link target)} of everything below root."""
    snap = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            st = p.lstat()
            link = os.readlink(p) if p.is_symlink() else None
            snap[str(p.relative_to(root))] = (st.st_mode, st.st_size, st.st_mtime_ns, link)
    return snap


# An mtime no file made during a test can have (2001-09-09): set on links before a re-run, so
# a link the re-run deletes and re-creates shows a new mtime even on a coarse clock.
OLD_MTIME_NS = 1_000_000_000 * 10**9


def backdate_links(root: Path) -> None:
    """Give every symlink below `root` the mtime OLD_MTIME_NS (the link itself, not its target)."""
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            if path.is_symlink():
                os.utime(path, ns=(OLD_MTIME_NS, OLD_MTIME_NS), follow_symlinks=False)


def link_identities(root: Path) -> dict[str, tuple[int, int, str]]:
    """{relative path: (inode, mtime_ns, target)} of every symlink below `root`: equal before
    and after a re-run only when the links were kept, not deleted and re-created."""
    links = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            if path.is_symlink():
                st = path.lstat()
                links[str(path.relative_to(root))] = (st.st_ino, st.st_mtime_ns, os.readlink(path))
    return links
