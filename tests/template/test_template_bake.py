"""Baking template/ (the cookiecutter API via trainkit.new.bake, as `trainkit new` does):
every valid task x label_format combination, the generated tree, and rejected answers."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from cookiecutter.exceptions import FailedHookException
from dockerfile_parse import DockerfileParser

from trainkit import layout, paths, score
from trainkit.bake_check import bake_all, leftovers
from trainkit.new import TASK_LABEL_FORMATS, bake

TASK_FILES = ("datamodule.py", "metrics.py", "model.py")
DOCKER_FILES = (
    ".env",
    "Dockerfile",
    "requirements.txt",
    "setup.py",
    "train.py",
    *TASK_FILES,
    *layout.TEMPLATE_SUPPORT_FILES,
)
CONFIG_FILES = ("config.jsonschema", "custom.json", "export_config.json", "presets.json")


@pytest.fixture(scope="module")
def baked(tmp_path_factory) -> dict[tuple[str, str], Path]:
    out = tmp_path_factory.mktemp("baked")
    arch_dirs = bake_all(out)
    return dict(zip(TASK_LABEL_FORMATS, arch_dirs, strict=True))


def files_under(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_every_combination_bakes_the_expected_tree(baked):
    for (task, _), arch in baked.items():
        assert arch.is_dir(), arch
        assert arch.parent.name == task.capitalize()
        assert files_under(arch) == sorted(
            [f"config/{name}" for name in CONFIG_FILES]
            + [f"docker/{name}" for name in DOCKER_FILES]
        )


def test_no_jinja_is_left_anywhere(baked):
    root = next(iter(baked.values())).parent.parent.parent
    assert leftovers(root) == []
    assert not list(root.rglob("*{{*")) and not list(root.rglob("_tasks"))


def test_baked_python_is_ruff_clean(baked):
    root = next(iter(baked.values())).parent.parent.parent
    config = str(paths.REPO_ROOT / "pyproject.toml")
    for command in (["format", "--check"], ["check"]):
        proc = subprocess.run(
            ["ruff", *command, "--config", config, str(root)], capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_json_files_parse_and_schema_is_draft7(baked):
    import jsonschema

    for arch in baked.values():
        for name in CONFIG_FILES:
            json.loads((arch / "config" / name).read_text())
        schema = json.loads((arch / "config" / "config.jsonschema").read_text())
        jsonschema.Draft7Validator.check_schema(schema)
        for key in ("train-split", "test-split", "accelerator", "devices", "num-nodes"):
            assert key in schema["properties"]


def test_label_format_picks_the_label_writer(baked):
    def setup(task, fmt):
        return (baked[(task, fmt)] / "docker" / "setup.py").read_text()

    assert "as_yolo(" in setup("detection", "YOLO")
    assert "as_coco(" not in setup("detection", "YOLO")
    assert 'dataset_type="detection"' in setup("detection", "COCO")
    assert 'dataset_type="classification"' in setup("classification", "COCO")
    assert 'dataset_type="segmentation"' in setup("segmentation", "COCO")
    assert "classes.names" in (baked[("detection", "YOLO")] / "docker" / "setup.py").read_text()


def test_setup_uses_only_the_platform_runtime_api(baked):
    for arch in baked.values():
        source = (arch / "docker" / "setup.py").read_text()
        for module, imported in re.findall(r"from (\w+) import \(?([\w\s,]+)\)?", source):
            if module in layout.RUNTIME_API:
                names = {n.strip() for n in imported.split(",") if n.strip()}
                assert names <= set(layout.RUNTIME_API[module]), (module, names)


@pytest.mark.parametrize("score_value", [0.92349, 1.0, 0.0])
def test_custom_score_regexp_reads_the_printed_score_line(baked, score_value):
    for arch in baked.values():
        custom = json.loads((arch / "config" / "custom.json").read_text())
        line = f"{custom['score_name']}: {score_value:.4f}"
        log = "\n".join(["noise 0.5", "Epoch 3: loss 0.25", line, ""])
        assert score.platform_score(log, custom["score_regexp"]) == round(score_value, 3)
        train = (arch / "docker" / "train.py").read_text()
        assert f'SCORE_NAME = "{custom["score_name"]}"' in train


def test_model_filepath_is_under_the_output_dir_and_a_platform_format(baked):
    for arch in baked.values():
        custom = json.loads((arch / "config" / "custom.json").read_text())
        path = Path(custom["model_filepath"])
        assert path.parent == Path("/workspace/output")
        assert path.suffix in layout.MODEL_FORMATS
        # train.py falls back to model.pt when custom.json is not in the image (the platform).
        assert path.name == "model.pt"
        assert '"model.pt"' in (arch / "docker" / "train.py").read_text()


def test_export_config_matches_the_schema_image_size(baked):
    for arch in baked.values():
        export = json.loads((arch / "config" / "export_config.json").read_text())
        schema = json.loads((arch / "config" / "config.jsonschema").read_text())
        size = schema["properties"]["image-size"]["default"]
        assert export["input_shapes"] == [[1, 3, size, size]]
        assert set(export["dynamic_axes"]) == {*export["input_names"], *export["output_names"]}


def test_dockerfile_follows_the_contract(baked):
    for arch in baked.values():
        parser = DockerfileParser(path=str(arch / "docker" / "Dockerfile"))
        instructions = [
            (i["instruction"], i["value"])
            for i in parser.structure
            if i["instruction"] != "COMMENT"
        ]
        assert instructions[0] == ("ARG", "BASE_IMAGE=nvcr.io/nvidia/pytorch:24.01-py3")
        assert instructions[1] == ("FROM", "${BASE_IMAGE}")
        assert ("WORKDIR", "/workspace") in instructions
        assert instructions[-1] == ("ENTRYPOINT", '["/bin/bash", "/docker-entrypoint.sh"]')
        assert any(k == "ARG" and v.startswith("TORCH_CUDA_INDEX") for k, v in instructions)
        copied: set[str] = set()
        for kind, value in instructions:
            if kind == "COPY":
                *sources, _ = shlex.split(value)
                copied |= {s.rstrip("*") for s in sources}
        docker_files = {p.name for p in (arch / "docker").iterdir()} - {"Dockerfile"}
        expected = set(layout.RUNTIME_FILES) | docker_files | set(layout.DOCKERFILE_MUST_COPY)
        expected |= {"presets.json", "export_config.json", "custom.json"}
        assert copied == expected
        text = (arch / "docker" / "Dockerfile").read_text()
        # platform-only sources must be COPYed with a glob (absent from its build context)
        own = set(layout.RUNTIME_FILES) - set(layout.PLATFORM_BUILD_CONTEXT_FILES) - docker_files
        for name in own | {"custom.json"}:
            assert f"{name}*" in text, name


def test_requirements_cover_the_runtime_and_the_examples(baked):
    def names(path: Path) -> set[str]:
        found = set()
        for line in path.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                found.add(re.split(r"[<>=!~\[; ]", line, maxsplit=1)[0].lower())
        return found

    common_requirements = paths.COMMON_DIR / "requirements.txt"
    for arch in baked.values():
        required = names(arch / "docker" / "requirements.txt")
        assert {"lightning", "torchmetrics", "onnx", "onnxruntime", "pillow"} <= required
        if common_requirements.is_file():
            assert names(common_requirements) <= required
        assert "torchvision" not in required


def test_support_files_are_copies_of_common(baked):
    for arch in baked.values():
        for name in layout.TEMPLATE_SUPPORT_FILES:
            assert (arch / "docker" / name).read_bytes() == (paths.COMMON_DIR / name).read_bytes()


def test_vendor_runtime_copies_every_runtime_file(tmp_path):
    provider = bake(tmp_path, {"vendor_runtime": "yes", "architecture": "Vendored"})
    docker = provider / "Classification" / "Vendored" / "docker"
    for name in (*layout.RUNTIME_FILES, *layout.TEMPLATE_SUPPORT_FILES):
        assert (docker / name).read_bytes() == (paths.COMMON_DIR / name).read_bytes(), name
    assert (docker / "train.py").is_file()


def test_without_vendor_runtime_no_runtime_file_is_copied(baked):
    for arch in baked.values():
        present = {p.name for p in (arch / "docker").iterdir()}
        assert not present & (set(layout.RUNTIME_FILES) - set(layout.TEMPLATE_SUPPORT_FILES))


# --- answers the pre-gen hook rejects: exit 1, one line, nothing written --------------------

BAD_ANSWERS = [
    ({"architecture": "my net"}, "architecture 'my net' must match"),
    ({"architecture": "nets/mine"}, "architecture 'nets/mine' must match"),
    ({"category": "a/b"}, "category 'a/b' must match"),
    ({"architecture": "1net"}, "architecture '1net' must match"),
    ({"provider": "Ac me"}, "provider 'Ac me' must match"),
    ({"provider": "9acme"}, "provider '9acme' must match"),
    ({"task": "classification", "label_format": "YOLO"}, "label_format 'YOLO' does not work"),
    ({"task": "segmentation", "label_format": "YOLO"}, "label_format 'YOLO' does not work"),
    ({"label_format": "VOC"}, "label_format 'VOC' must be one of"),
    ({"score_name": "acc(%)"}, "score_name 'acc(%)' must match"),
]


def bake_in_subprocess(out: Path, extra: dict[str, str]) -> subprocess.CompletedProcess:
    """Bake in a child process so the hook's stderr can be read."""
    code = (
        "import json, logging, sys; from pathlib import Path; from trainkit.new import bake;"
        "logging.getLogger('cookiecutter').setLevel(logging.CRITICAL);"
        "bake(Path(sys.argv[1]), json.loads(sys.argv[2]))"
    )
    return subprocess.run(
        [sys.executable, "-c", code, str(out), json.dumps(extra)], capture_output=True, text=True
    )


@pytest.mark.parametrize(("extra", "message"), BAD_ANSWERS, ids=[m for _, m in BAD_ANSWERS])
def test_bad_answers_are_rejected_and_nothing_is_written(tmp_path, extra, message):
    proc = bake_in_subprocess(tmp_path, extra)
    assert proc.returncode != 0
    assert "FailedHookException" in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1 and message in errors[0], proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_existing_architecture_is_refused_and_kept(tmp_path):
    provider = bake(tmp_path, {"task": "detection"})
    arch = provider / "Detection" / "TinyDet"
    (arch / "docker" / "model.py").write_text("# my edits\n")
    before = files_under(tmp_path)
    with pytest.raises(FailedHookException):
        bake(tmp_path, {"task": "detection"})
    assert files_under(tmp_path) == before
    assert (arch / "docker" / "model.py").read_text() == "# my edits\n"
    # another architecture next to it in the same provider/category is fine
    bake(tmp_path, {"task": "detection", "architecture": "OtherDet"})
    assert (provider / "Detection" / "OtherDet" / "docker" / "train.py").is_file()


def test_bad_answer_in_an_existing_provider_writes_nothing(tmp_path):
    bake(tmp_path, {})
    before = files_under(tmp_path)
    with pytest.raises(FailedHookException):
        bake(tmp_path, {"category": "bad name"})
    assert files_under(tmp_path) == before


def test_plain_cookiecutter_cli_works(tmp_path):
    """`cookiecutter template/ --no-input` (what platform users know) from the repo root."""
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "cookiecutter", "template/", "--no-input"),
            *("--default-config", "-o", str(out), "task=segmentation"),
        ],
        cwd=paths.REPO_ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PWD": str(paths.REPO_ROOT), "HOME": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stderr
    arch = out / "Acme" / "Segmentation" / "TinySeg"
    assert (arch / "docker" / "run_control.py").is_file()
    assert "trainkit run" in proc.stdout
