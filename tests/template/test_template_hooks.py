"""Unit tests of the cookiecutter hooks' functions (template/hooks/*.py, loaded unrendered)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from trainkit import names, paths


def load_hook(name: str):
    path = paths.TEMPLATE_DIR / "hooks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"hook_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pre = load_hook("pre_gen_project")
post = load_hook("post_gen_project")


# --- pre_gen_project -----------------------------------------------------------------------


@pytest.mark.parametrize("value", ["Acme", "TinyNet", "a", "Yolo-v8", "resnet_18", "X1"])
def test_valid_names_pass(value):
    pre.check_name("architecture", value)


@pytest.mark.parametrize(
    "value", ["", "my net", "a/b", "../x", "1net", "-net", "_net", "net.v2", "näme", "a\n"]
)
def test_invalid_names_fail_with_the_trainkit_message(value):
    with pytest.raises(pre.AnswerError) as info:
        pre.check_name("provider", value)
    assert str(info.value) == names.name_error("provider", value)


def test_name_pattern_is_trainkits():
    assert pre.NAME_PATTERN == names.NAME_PATTERN
    assert pre.NAME_FIELDS == names.NAME_KINDS


@pytest.mark.parametrize(
    ("task", "label_format"),
    [
        ("classification", "COCO"),
        ("detection", "YOLO"),
        ("detection", "COCO"),
        ("segmentation", "COCO"),
    ],
)
def test_possible_task_format_combinations_pass(task, label_format):
    pre.check_task_and_format(task, label_format)


@pytest.mark.parametrize(
    ("task", "label_format", "needle"),
    [
        ("classification", "YOLO", "does not work with task 'classification'"),
        ("segmentation", "YOLO", "does not work with task 'segmentation'"),
        ("detection", "VOC", "must be one of COCO, YOLO"),
        ("detection", "yolo", "must be one of COCO, YOLO"),
        ("regression", "COCO", "must be one of classification"),
    ],
)
def test_impossible_task_format_combinations_fail(task, label_format, needle):
    with pytest.raises(pre.AnswerError, match=needle):
        pre.check_task_and_format(task, label_format)


def test_trainkit_knows_the_same_combinations():
    from trainkit.new import TASK_LABEL_FORMATS

    possible = {(t, f) for f, tasks in pre.LABEL_FORMAT_TASKS.items() for t in tasks}
    assert set(TASK_LABEL_FORMATS) == possible


@pytest.mark.parametrize("value", ["Accuracy", "mAP@0.5", "mIoU", "F1 score", "top-1_acc"])
def test_score_names_that_fit_a_regexp_pass(value):
    pre.check_score_name(value)


@pytest.mark.parametrize("value", ["", "acc(%)", "a*b", "1st", "x" * 41, "acc\\d"])
def test_score_names_with_regexp_specials_fail(value):
    with pytest.raises(pre.AnswerError, match="score_name"):
        pre.check_score_name(value)


def test_existing_architecture_is_refused(tmp_path):
    (tmp_path / "Classification" / "TinyNet").mkdir(parents=True)
    with pytest.raises(pre.AnswerError, match="already exists"):
        pre.check_not_existing(tmp_path, "Classification", "TinyNet")
    pre.check_not_existing(tmp_path, "Classification", "OtherNet")


def test_check_answers_reports_the_first_bad_answer(tmp_path):
    context = {
        "provider": "Acme",
        "category": "Detection",
        "architecture": "my det",
        "task": "classification",
        "label_format": "YOLO",
        "score_name": "Accuracy",
    }
    with pytest.raises(pre.AnswerError, match="architecture 'my det'"):
        pre.check_answers(context, tmp_path)
    context["architecture"] = "MyDet"
    with pytest.raises(pre.AnswerError, match="label_format 'YOLO'"):
        pre.check_answers(context, tmp_path)


def _arch(provider_dir: Path, category: str, name: str) -> None:
    for rel in ("config/config.jsonschema", "docker/Dockerfile"):
        (provider_dir / category / name / rel).parent.mkdir(parents=True, exist_ok=True)
        (provider_dir / category / name / rel).touch()


@pytest.mark.parametrize(
    ("existing", "answer", "needle"),
    [
        ("Classification/TinyNet", "Net", "its Dockerfile look-up keeps every Dockerfile"),
        ("Classification/Net", "TinyNet", "cannot build sibling Acme/Classification/Net"),
        ("Classification/TinyNet", "Class", "whose path contains 'Class'"),
    ],
)
def test_names_the_platforms_lookups_confuse_are_refused(tmp_path, existing, answer, needle):
    provider = tmp_path / "Acme"
    _arch(provider, *existing.split("/"))
    with pytest.raises(pre.AnswerError, match=needle):
        pre.check_platform_lookups(provider, "Classification", answer)
    assert pre.check_platform_lookups(provider, "Detection", "GridDet") == []


def test_names_of_the_platforms_stock_templates_count(tmp_path):
    with pytest.raises(pre.AnswerError, match="Ultralytics/Object Detection/YOLOv5"):
        pre.check_platform_lookups(tmp_path / "Ultralytics", "Object Detection", "YOLO")
    warnings = pre.check_platform_lookups(tmp_path / "Acme", "Detection", "Det")
    assert len(warnings) == 1 and "is part of the path" in warnings[0]


def test_cookiecutter_defaults_are_accepted_answers():
    context = json.loads((paths.TEMPLATE_DIR / "cookiecutter.json").read_text())
    assert "vendor_runtime" not in context  # the runtime is always added at package time
    assert context["task"] == ["classification", "detection", "segmentation"]
    assert context["base_image"][0] == "nvcr.io/nvidia/pytorch:24.01-py3"
    pre.check_name("provider", context["provider"])


# --- post_gen_project ----------------------------------------------------------------------


def make_docker_dir(root: Path) -> Path:
    docker = root / "docker"
    for task in ("classification", "detection", "segmentation"):
        task_dir = docker / post.TASKS_DIR / task
        task_dir.mkdir(parents=True)
        (task_dir / "model.py").write_text(f"# {task}\n")
        (task_dir / "datamodule.py").write_text(f"# {task}\n")
    (docker / "train.py").write_text("# shared\n")
    return docker


def test_select_task_files_keeps_only_the_chosen_task(tmp_path):
    docker = make_docker_dir(tmp_path)
    moved = post.select_task_files(docker, "detection")
    assert moved == ["datamodule.py", "model.py"]
    assert sorted(p.name for p in docker.iterdir()) == ["datamodule.py", "model.py", "train.py"]
    assert (docker / "model.py").read_text() == "# detection\n"


def test_select_task_files_refuses_an_unknown_task(tmp_path):
    docker = make_docker_dir(tmp_path)
    with pytest.raises(FileNotFoundError, match="regression"):
        post.select_task_files(docker, "regression")


def test_next_steps_name_the_architecture_and_task():
    text = post.next_steps("templates/Acme/Detection/TinyDet", "detection")
    assert "trainkit run templates/Acme/Detection/TinyDet" in text
    assert "--task detection" in text


def test_display_path_is_relative_below_the_working_directory(tmp_path):
    assert post.display_path(tmp_path / "a" / "b", base=str(tmp_path)) == "a/b"
    assert post.display_path(Path("/elsewhere/x"), base=str(tmp_path)) == "/elsewhere/x"


def test_remove_generated_keeps_other_architectures(tmp_path):
    (tmp_path / "Cat" / "New" / "docker").mkdir(parents=True)
    (tmp_path / "Cat" / "Old").mkdir()
    post.remove_generated(tmp_path / "Cat" / "New")
    assert sorted(p.name for p in (tmp_path / "Cat").iterdir()) == ["Old"]
    post.remove_generated(tmp_path / "Cat" / "Old")
    assert not (tmp_path / "Cat").exists()


@pytest.mark.parametrize("value", ["Jane Doe", "Zoë O'Brien", "jane.doe@example.org", ""])
def test_author_fields_that_fit_a_dockerfile_label_pass(value):
    pre.check_author("author_name", value)


@pytest.mark.parametrize("value", ['Jane "JD" Doe', "a\\b", "$(id)", "line\nbreak", "`x`"])
def test_author_fields_that_break_a_dockerfile_label_fail(value):
    with pytest.raises(pre.AnswerError, match="author_name"):
        pre.check_author("author_name", value)
