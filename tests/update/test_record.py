"""The record of how an architecture was made (.trainkit-answers.json): written by the
template's post-gen hook for `trainkit new` and plain `cookiecutter` alike, equal to what
trainkit computes, kept out of the ZIP and the image; the shipped 0.1.0 template intact."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from trainkit import paths, vendor
from trainkit.update import record, versions

ARCH = Path("templates/Acme/Detection/TinyDet")


def load_post_gen_hook():
    path = paths.TEMPLATE_DIR / "hooks" / "post_gen_project.py"
    spec = importlib.util.spec_from_file_location("post_gen_for_record_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check_record(arch: Path, answers: dict) -> record.Record:
    rec = record.read_record(arch)
    assert rec is not None, f"{arch} has no {record.RECORD_NAME}"
    assert rec.template_hash == record.template_hash(paths.TEMPLATE_DIR)
    assert rec.trainkit_version == vendor.RUNTIME_VERSION
    assert rec.answers.items() >= answers.items()
    assert not any(key.startswith("_") for key in rec.answers)
    generated = {rel: record.digest(p.read_bytes()) for rel, p in record.tree_files(arch)}
    assert rec.files == generated and generated
    # trainkit writes records in the same format as the hook
    assert record.to_json(rec) == (arch / record.RECORD_NAME).read_text(encoding="utf-8")
    return rec


def test_trainkit_new_writes_the_record(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "trainkit", "new", "--no-input", "task=detection",
         "author_name=Ada"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rec = check_record(tmp_path / ARCH, {"task": "detection", "author_name": "Ada"})
    assert rec.answers["category"] == "Detection" and rec.answers["label_format"] == "YOLO"


def test_plain_cookiecutter_writes_the_record_too(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "cookiecutter", "--no-input", str(paths.TEMPLATE_DIR),
         "task=detection", "-o", "templates"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "PWD": str(tmp_path)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    check_record(tmp_path / ARCH, {"task": "detection"})


def test_the_hooks_template_hash_is_trainkits(tmp_path):
    hook = load_post_gen_hook()
    assert hook.RECORD_NAME == record.RECORD_NAME and hook.IGNORED == record.IGNORED
    assert hook.RECORD_ABOUT == record.ABOUT
    for template in (paths.TEMPLATE_DIR, versions.by_name("0.1.0").template_dir):
        assert hook.template_hash(template) == record.template_hash(template)
    copy = tmp_path / "template"
    shutil.copytree(paths.TEMPLATE_DIR, copy)
    (copy / "hooks" / "__pycache__").mkdir(exist_ok=True)
    (copy / "hooks" / "__pycache__" / "x.pyc").write_bytes(b"\0")
    assert record.template_hash(copy) == record.template_hash(paths.TEMPLATE_DIR)
    (copy / "cookiecutter.json").write_text(
        (copy / "cookiecutter.json").read_text().replace("Jane Doe", "John Doe")
    )
    assert record.template_hash(copy) != record.template_hash(paths.TEMPLATE_DIR)


def test_the_shipped_0_1_0_template_is_intact():
    old = versions.by_name("0.1.0")
    assert record.template_hash(old.template_dir) == old.hash
    assert not old.writes_record and old.signature_files
    assert {"schema_args.py", "run_control.py"} <= {
        p.name for p in (old.template_dir.parent / "common").iterdir()
    }
    assert (old.template_dir.parent / "PROVENANCE.md").is_file()


@pytest.mark.parametrize(
    "text", ["{", "[]", '{"template_hash": 1, "answers": {}}', '{"template_hash": "sha256:x"}']
)
def test_a_broken_record_is_one_line_naming_it(tmp_path, text):
    arch = tmp_path / "Acme" / "Classification" / "TinyNet"
    arch.mkdir(parents=True)
    (arch / record.RECORD_NAME).write_text(text)
    for args in (["--check"], ["--dry-run"]):
        proc = subprocess.run(
            [sys.executable, "-m", "trainkit", "update", *args, str(arch)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert proc.returncode == 3, proc.stderr
        assert proc.stderr.count("\n") == 1 and record.RECORD_NAME in proc.stderr


def test_the_record_is_not_packaged_and_the_validator_ignores_it(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "trainkit", "new", "--no-input"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    arch = tmp_path / "templates/Acme/Classification/TinyNet"
    assert (arch / record.RECORD_NAME).is_file()
    out = tmp_path / "t.zip"
    pkg = subprocess.run(
        [sys.executable, "-m", "trainkit", "package", "Acme", "Classification", "TinyNet",
         "--out", str(out)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert pkg.returncode == 0, pkg.stderr
    assert not [n for n in zipfile.ZipFile(out).namelist() if record.RECORD_NAME in n]
    check = subprocess.run(
        [sys.executable, "-m", "trainkit", "validate", "--json", str(arch)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    assert record.RECORD_NAME not in check.stdout
    assert json.loads(check.stdout)
