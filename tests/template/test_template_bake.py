"""Baking the template (trainkit/template/; the cookiecutter API via trainkit.new.bake, as
`trainkit new` does): every valid task x label_format combination, the generated tree, and
rejected answers."""

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

from tests.support.repo import PYPROJECT
from trainkit import layout, paths, platform, vendor
from trainkit.bake_check import bake_all, leftovers
from trainkit.new import TASK_LABEL_FORMATS, bake
from trainkit.platform import score
from trainkit.update.record import RECORD_NAME

TASK_FILES = ("datamodule.py", "model.py")
# Only the detection example has its own metric (mAP@0.5: torchmetrics' needs torchvision);
# classification and segmentation use torchmetrics' MulticlassAccuracy / MulticlassJaccardIndex.
OWN_METRIC_TASKS = ("detection",)
DOCKER_FILES = (
    ".env",
    "Dockerfile",
    "requirements.txt",
    "setup.py",
    "train.py",
    *TASK_FILES,
)
# No config/export_config.json: the platform writes export_config.json from its export form.
CONFIG_FILES = ("config.jsonschema", "custom.json", "presets.json")


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
            + (["docker/metrics.py"] if task in OWN_METRIC_TASKS else [])
            + [RECORD_NAME]  # how it was made, for trainkit update (tests/update)
        )


def test_no_jinja_is_left_anywhere(baked):
    root = next(iter(baked.values())).parent.parent.parent
    assert leftovers(root) == []
    assert not list(root.rglob("*{{*")) and not list(root.rglob("_tasks"))


def test_baked_python_is_ruff_clean(baked):
    root = next(iter(baked.values())).parent.parent.parent
    python_files = sorted(root.rglob("*.py"))
    # setup, train, model, datamodule (+ metrics for detection)
    own_metric = sum(1 for task, _ in baked if task in OWN_METRIC_TASKS)
    assert len(python_files) == 4 * len(baked) + own_metric
    for command in (["format", "--check"], ["check", "--show-files"], ["check"]):
        proc = subprocess.run(
            [sys.executable, "-m", "ruff", *command, "--config", str(PYPROJECT), str(root)],
            cwd=PYPROJECT.parent,  # ruff resolves the config's `src` against the cwd
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        if command[0] == "format":  # every baked file was looked at: none excluded
            assert f"{len(python_files)} files already formatted" in proc.stdout, proc.stdout
        elif "--show-files" in command:
            assert sorted(Path(line) for line in proc.stdout.split()) == python_files


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


def test_setup_and_train_import_only_the_runtime_package_and_their_own_modules(baked):
    own = {"datamodule", "metrics", "model", "setup"}
    third_party = {"json", "pathlib", "lightning", "torch", "__future__"}
    for arch in baked.values():
        for script in ("setup.py", "train.py"):
            source = (arch / "docker" / script).read_text()
            imported = set(re.findall(r"^(?:from|import) (\w+)", source, flags=re.M))
            assert layout.RUNTIME_PACKAGE in imported, script
            assert imported <= own | third_party | {layout.RUNTIME_PACKAGE}, (script, imported)
            # the platform's flat module names are never imported by generated code
            assert not imported & set(layout.LEGACY_MODULES), (script, imported)


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
        assert path.name == "model.pt"


def test_model_file_falls_back_to_model_pt_without_custom_json(tmp_path, monkeypatch):
    """The runtime's train_task writes custom.json's model_filepath name into $OUTPUT_DIR, and
    model.pt when the image has no custom.json."""
    from trainkit_runtime import lifecycle

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OUTPUT_DIR", str(tmp_path / "out"))
    assert lifecycle.model_filepath() == tmp_path / "out" / "model.pt"
    (tmp_path / "custom.json").write_text('{"model_filepath": "/workspace/output/net.pth"}')
    assert lifecycle.model_filepath() == tmp_path / "out" / "net.pth"


NET_PROBE = """
import json, sys, torch
from model import Net
shape = json.loads(sys.argv[1])
out = Net(3)(torch.ones(*shape))
print(json.dumps([list(t.shape) for t in (out if isinstance(out, tuple) else (out,))]))
"""


def test_net_takes_the_export_forms_initial_input(baked):
    """The platform exports with its export form's values unless the user edits them: the
    example networks must take that input shape (fully convolutional, any size / 8)."""
    (shape,) = platform.export_form_values()["input_shapes"]
    for arch in baked.values():
        proc = subprocess.run(
            [sys.executable, "-c", NET_PROBE, json.dumps(shape)],
            cwd=arch / "docker",
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert json.loads(proc.stdout)[0][0] == shape[0]


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
                copied |= {s.rstrip("*/") for s in sources}
        docker_files = {p.name for p in (arch / "docker").iterdir()} - {"Dockerfile"}
        runtime = {*layout.ENTRY_SCRIPTS, layout.RUNTIME_PACKAGE}
        expected = runtime | docker_files | set(layout.DOCKERFILE_MUST_COPY)
        expected |= {"presets.json", "export_config.json", "custom.json", "config_to_args.py"}
        assert copied == expected
        text = (arch / "docker" / "Dockerfile").read_text()
        # every source exists in the platform's build context: no glob is needed or used
        assert "*" not in "".join(v for k, v in instructions if k == "COPY"), text


def test_requirements_cover_the_runtime_and_the_examples(baked):
    def names(path: Path) -> set[str]:
        found = set()
        for line in path.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                found.add(re.split(r"[<>=!~\[; ]", line, maxsplit=1)[0].lower())
        return found

    runtime = names(vendor.RUNTIME_DIR / "requirements.txt")
    assert {"lightning", "onnx", "onnxruntime", "defusedxml"} <= runtime
    for arch in baked.values():
        required = names(arch / "docker" / "requirements.txt")
        assert {"torchmetrics", "pillow"} <= required
        # the architecture lists only its own code's packages; the runtime brings the rest
        assert not (required - {"numpy", "pillow"}) & runtime, required & runtime
        assert "torchvision" not in required | runtime
        dockerfile = (arch / "docker" / "Dockerfile").read_text()
        assert "-r trainkit_runtime/requirements.txt -r requirements.txt" in dockerfile


def test_no_runtime_file_is_copied_into_the_architecture(baked):
    for arch in baked.values():
        present = {p.relative_to(arch / "docker").as_posix() for p in (arch / "docker").rglob("*")}
        runtime = {rel for rel, _ in vendor.runtime_files()} | {layout.RUNTIME_PACKAGE}
        assert not present & runtime
        assert not present & {f"{m}.py" for m in layout.LEGACY_MODULES}


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
    ({"author_name": 'Jane "JD" Doe'}, """author_name 'Jane "JD" Doe' must not contain '"'"""),
    ({"author_name": "a\\b"}, "author_name 'a\\\\b' must not contain '\\\\'"),
    ({"author_email": "$(id)@x.org"}, "author_email '$(id)@x.org' must not contain '$'"),
    ({"author_name": "`id`"}, "author_name '`id`' must not contain '`'"),
    ({"author_name": "Jane\nDoe"}, "author_name 'Jane\\nDoe' must not contain '\\n'"),
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


def test_author_with_single_quote_and_non_ascii_reaches_the_dockerfile_label(tmp_path):
    author, email = "Zoë O'Brien", "zoe.o'brien@example.org"
    provider = bake(tmp_path, {"author_name": author, "author_email": email})
    (dockerfile,) = provider.rglob("Dockerfile")
    labels = DockerfileParser(path=str(dockerfile)).labels
    assert labels["org.opencontainers.image.authors"] == f"{author} <{email}>"


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
    """`cookiecutter <template dir> --no-input` (what platform users know), on the template
    directory trainkit ships (`trainkit new --template-dir` prints it), from another directory."""
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "cookiecutter", str(paths.TEMPLATE_DIR), "--no-input"),
            *("--default-config", "-o", str(out), "task=segmentation"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PWD": str(tmp_path), "HOME": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stderr
    arch = out / "Acme" / "Segmentation" / "TinySeg"
    assert (arch / "docker" / "train.py").is_file()
    assert not (arch / "docker" / layout.RUNTIME_PACKAGE).exists()
    assert "trainkit run" in proc.stdout
