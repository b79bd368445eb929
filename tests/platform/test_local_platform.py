"""The platform's endpoints over a container that is a directory (trainkit/platform/local.py and
container.py): the config edit of a built container (PUT /train/config: the raw files copied to
the Dockerfile's COPY target of train_config.json — both of them —, DATASET_ID rewritten in its
.env by python-dotenv), the edit dialog's starting values, the model it serves, the score."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.support.repo import EXAMPLES_DIR
from trainkit.platform import MODEL_TRAINING_DIR, recipe
from trainkit.platform.container import HostContainer
from trainkit.platform.local import PlatformError, served_model

EXAMPLE = EXAMPLES_DIR / "Acme" / "Classification" / "TinyNet"


def built_container(arch: Path, tmp_path: Path):
    """A context built the platform's way, and a 'container' holding its WORKDIR files."""
    built = recipe.assemble(arch, tmp_path / "ctx", MODEL_TRAINING_DIR, dataset_id=1)
    built.build.row.container_id = "local"  # run_train_container has created it
    root = tmp_path / "container"
    workdir = root / "workspace"
    workdir.mkdir(parents=True)
    for name in ("train_config.json", "export_config.json", ".env"):
        shutil.copy(built.context / name, workdir / name)
    (root / "etc").mkdir()
    log = tmp_path / "container.log"
    return built, HostContainer({"/workspace/output": tmp_path / "output"}, log, root=root)


def test_edit_copies_both_raw_files_and_rewrites_dataset_id(tmp_path):
    built, io = built_container(EXAMPLE, tmp_path)
    row = built.build.row
    with recipe.installed(EXAMPLE, MODEL_TRAINING_DIR, container=io, row=row) as lp:
        current = lp.current_config()
        assert current["train"]["values"] == built.train_config
        assert current["export"]["values"] == built.export_config
        lp.edit({**built.train_config, "epochs": 3}, {}, 2)
    workdir = io.root / "workspace"
    assert json.loads((workdir / "train_config.json").read_text())["epochs"] == 3
    assert (workdir / "train_config.json").read_text().startswith("{\n    ")  # indent=4
    assert json.loads((workdir / "export_config.json").read_text()) == {}  # export switched off
    env = (workdir / ".env").read_text()
    assert "DATASET_ID='2'" in env.splitlines()  # python-dotenv's set_key, single-quoted
    assert env.startswith("# Extra environment")  # the comments stay
    assert row.dataset_id == 2


def test_edit_without_a_new_dataset_leaves_env_alone(tmp_path):
    built, io = built_container(EXAMPLE, tmp_path)
    before = (io.root / "workspace" / ".env").read_bytes()
    with recipe.installed(EXAMPLE, MODEL_TRAINING_DIR, container=io, row=built.build.row) as lp:
        lp.edit(built.train_config, built.export_config, 1)
    assert (io.root / "workspace" / ".env").read_bytes() == before


def test_edit_puts_export_config_beside_train_config_whatever_the_dockerfile_says(tmp_path):
    """update_train_container_config looks up the COPY target of train_config.json for both
    files: an image that keeps export_config.json elsewhere never sees the edited one."""
    arch = tmp_path / "templates" / "Acme" / "Classification" / "TinyNet"
    shutil.copytree(EXAMPLE, arch)
    dockerfile = arch / "docker" / "Dockerfile"
    text = dockerfile.read_text().replace(
        "COPY presets.json export_config.json train_config.json",
        "COPY presets.json train_config.json",
    )
    dockerfile.write_text(text + "COPY export_config.json /etc/\n")
    built, io = built_container(arch, tmp_path)
    shutil.copy(built.context / "export_config.json", io.root / "etc" / "export_config.json")
    with recipe.installed(arch, MODEL_TRAINING_DIR, container=io, row=built.build.row) as lp:
        lp.edit(built.train_config, {"model_type": "pytorch"}, 1)
    assert json.loads((io.root / "workspace" / "export_config.json").read_text()) == {
        "model_type": "pytorch"
    }
    assert json.loads((io.root / "etc" / "export_config.json").read_text()) == built.export_config


def test_the_served_model_is_the_onnx_file_first(tmp_path):
    built, io = built_container(EXAMPLE, tmp_path)
    row = built.build.row
    output = tmp_path / "output"
    output.mkdir()
    assert served_model(row, io) is None  # the platform's 404
    (output / "model.pt").write_bytes(b"weights")
    assert served_model(row, io) == ("/workspace/output/model.pt", "pytorch")
    (output / "model.onnx").write_bytes(b"onnx")
    assert served_model(row, io) == ("/workspace/output/model.onnx", "onnx")


def test_score_comes_from_the_container_log(tmp_path):
    built, io = built_container(EXAMPLE, tmp_path)
    io.log_file.write_text("Accuracy: 0.5\n" + "noise\n" * 10 + "Accuracy: 0.87654\n")
    with recipe.installed(EXAMPLE, MODEL_TRAINING_DIR, container=io, row=built.build.row) as lp:
        assert lp.score() == 0.877
        io.log_file.write_text("Accuracy: 0.9\n" + "x\n" * 50)
        with pytest.raises(PlatformError, match="404: No score for Train Container #1"):
            lp.score()


def test_host_container_paths_stay_inside(tmp_path):
    io = HostContainer(
        {"/workspace/output": tmp_path / "out"}, tmp_path / "log", root=tmp_path / "r"
    )
    assert io.host_path("/workspace/output/../../etc/passwd") == tmp_path / "r" / "etc" / "passwd"
    assert io.host_path("/workspace/output/m.pt") == tmp_path / "out" / "m.pt"
    assert HostContainer({}, tmp_path / "log").host_path("/etc/passwd") is None
