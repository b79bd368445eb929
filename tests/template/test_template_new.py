"""`trainkit new` (the CLI around the cookiecutter template) and the committed examples."""

from __future__ import annotations

import filecmp
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.repo import EXAMPLES_DIR
from trainkit.cli import main
from trainkit.new import EXAMPLES, bake


def trainkit(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "trainkit", *args], cwd=cwd, capture_output=True, text=True
    )


def test_new_no_input_defaults_to_templates_in_the_working_directory(tmp_path):
    proc = trainkit("new", "--no-input", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    arch = tmp_path / "templates" / "Acme" / "Classification" / "TinyNet"
    assert (arch / "docker" / "train.py").is_file()
    assert "Created templates/Acme/Classification/TinyNet" in proc.stdout


def test_new_takes_answers_as_key_value(tmp_path):
    code = main(
        [
            "new",
            "--no-input",
            "--output-dir",
            str(tmp_path),
            "task=detection",
            "provider=Lab",
            "architecture=GridDet",
            "label_format=COCO",
        ]
    )
    assert code == 0
    setup = (tmp_path / "Lab" / "Detection" / "GridDet" / "docker" / "setup.py").read_text()
    assert 'dataset_type="detection"' in setup


@pytest.mark.parametrize("answer", ["provider=a/b", "provider=../up", "architecture=x y"])
def test_new_rejects_bad_names_before_writing(tmp_path, answer):
    proc = trainkit("new", "--no-input", "--output-dir", "out", answer, cwd=tmp_path)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "must match" in lines[0], proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_new_hook_rejection_is_one_line_and_writes_nothing(tmp_path):
    proc = trainkit("new", "--no-input", "label_format=YOLO", cwd=tmp_path)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert lines == [
        "ERROR: label_format 'YOLO' does not work with task 'classification' "
        "(YOLO labels are boxes, for detection only); use COCO"
    ]
    assert not (tmp_path / "templates" / "Acme").exists()


def test_new_refuses_to_overwrite_an_architecture(tmp_path):
    assert trainkit("new", "--no-input", cwd=tmp_path).returncode == 0
    proc = trainkit("new", "--no-input", cwd=tmp_path)
    assert proc.returncode == 1
    assert "already exists" in proc.stderr


def test_new_refuses_a_name_the_platforms_lookups_confuse(tmp_path):
    assert trainkit("new", "--no-input", cwd=tmp_path).returncode == 0  # TinyNet
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    proc = trainkit("new", "--no-input", "architecture=Net", cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1
    assert proc.stderr.startswith("ERROR: architecture 'Net': the platform cannot build")
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    latent = trainkit("new", "--no-input", "task=detection", "architecture=Det", cwd=tmp_path)
    assert latent.returncode == 0
    assert "WARNING: architecture 'Det': architecture name 'Det' is part of the path" in (
        latent.stderr
    )


def test_new_rejects_unknown_questions(tmp_path):
    proc = trainkit("new", "--no-input", "colour=red", cwd=tmp_path)
    assert proc.returncode == 2
    assert "unknown question(s) colour" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_new_rejects_malformed_answers(tmp_path):
    proc = trainkit("new", "--no-input", "task", cwd=tmp_path)
    assert proc.returncode == 2
    assert "expected KEY=VALUE" in proc.stderr


def committed_example(answers: dict[str, str], tmp_path: Path) -> tuple[Path, Path]:
    provider = bake(tmp_path, answers)
    (arch,) = [p for p in provider.glob("*/*") if p.is_dir()]
    return arch, EXAMPLES_DIR / arch.relative_to(tmp_path)


def tree(root: Path) -> list[str]:
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    )


@pytest.mark.parametrize("answers", EXAMPLES, ids=[a["task"] for a in EXAMPLES])
def test_committed_examples_match_the_template(tmp_path, answers):
    """templates/ holds template/ baked with EXAMPLES; after changing template/ (or a support
    file in common/) run `python -m trainkit.new --refresh-examples`."""
    fresh, committed = committed_example(answers, tmp_path)
    assert committed.is_dir(), f"{committed} missing: python -m trainkit.new --refresh-examples"
    assert tree(fresh) == tree(committed)
    _, mismatch, errors = filecmp.cmpfiles(fresh, committed, tree(fresh), shallow=False)
    assert mismatch == [] and errors == [], (
        f"{committed} differs from template/ in {mismatch + errors}: "
        "run `python -m trainkit.new --refresh-examples`"
    )
