"""Class 2, bounded work: whatever an input asks for, the work has a limit and crossing it is
one line. Catastrophic score regexps (run under a time limit; the platform has none), 100k-deep
JSON (no RecursionError traceback), values too big for train.py's argv (refused up front, key
named, instead of "Argument list too long"), 1 MB .env lines, overlong dataset ids and a
synthetic image side that would allocate 30 GB."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from tests.hostile.conftest import run_args
from tests.support.hostile import assert_one_line_error, trainkit, tree_state
from tests.support.template_tree import ARCH, TOP, valid_files, write_zip
from trainkit.platform import score
from trainkit.validation import validate_path
from trainkit_runtime import schema_args

pytestmark = pytest.mark.hostile

CUSTOM = f"{ARCH}/config/custom.json"
DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize(
    "regexp", [r"Accuracy: (([0-9.]+)+)+$", r"(\s*)*Accuracy: ([0-9.]+)x", r"(a|a)*b([0-9]+)"]
)
def test_catastrophic_score_regexp_is_an_error_not_a_hang(tmp_path, regexp):
    custom = json.loads(valid_files()[CUSTOM]) | {"score_regexp": regexp}
    files = {**valid_files(), CUSTOM: json.dumps(custom).encode()}
    started = time.monotonic()
    report = validate_path(write_zip(tmp_path / "t.zip", files))
    assert time.monotonic() - started < 30
    (error,) = [f for f in report.errors if f.path == f"{TOP}/{CUSTOM}"]
    assert "did not finish within" in error.message
    assert "the platform runs re.findall over the log tail" in error.message
    assert "would hang" in error.message


def test_score_of_a_run_is_read_under_the_time_limit():
    started = time.monotonic()
    with pytest.raises(score.ScoreRegexpError, match="would hang"):
        score.platform_score("a" * 60 + "!\n", r"(a+)+$([0-9])", time_limit=1.0)
    assert time.monotonic() - started < 10
    assert score.platform_score("x\nAccuracy: 0.9375\n", r"Accuracy: ([0-9.]+)") == 0.938


def test_deep_json_in_a_zip_is_one_error(tmp_path):
    files = {**valid_files(), f"{ARCH}/config/config.jsonschema": DEEP.encode()}
    report = validate_path(write_zip(tmp_path / "t.zip", files))
    errors = [f for f in report.errors if "nested too deeply" in f.message]
    assert len(errors) == 1, report.lines()


def test_deep_json_config_for_trainkit_run_is_one_line(tmp_path, arch_copy):
    (tmp_path / "deep.json").write_text(DEEP)
    proc = trainkit(*run_args(arch_copy, "--config", "deep.json", "--output", "r"), cwd=tmp_path)
    assert_one_line_error(proc.returncode, proc.stderr, "nested deeper than the limit 64")
    assert not (tmp_path / "r").exists()


def test_deep_train_config_in_the_container_is_one_line(tmp_path):
    (tmp_path / "train_config.json").write_text(DEEP)
    proc = subprocess.run(
        [sys.executable, "-m", "trainkit_runtime.config_to_args", "--null"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert_one_line_error(proc.returncode, proc.stderr, "nested deeper than the limit")


def add_string_property(arch) -> None:
    schema_file = arch / "config" / "config.jsonschema"
    schema = json.loads(schema_file.read_text())
    schema["properties"]["note"] = {"type": "string", "default": ""}
    schema_file.write_text(json.dumps(schema))


@pytest.mark.parametrize(
    ("size", "fragment"),
    [
        (1_000_000, "config key 'note': its argument is 1000008 bytes, more than the limit 65536"),
        (10_000_000, "more than the limit 8388608"),
    ],
)
def test_oversized_value_is_refused_before_the_run(tmp_path, arch_copy, size, fragment):
    add_string_property(arch_copy)
    (tmp_path / "values.json").write_text(json.dumps({"note": "x" * size}))
    proc = trainkit(*run_args(arch_copy, "--config", "values.json", "--output", "r"), cwd=tmp_path)
    line = assert_one_line_error(proc.returncode, proc.stderr, fragment)
    assert "Argument list too long" not in proc.stdout + proc.stderr
    assert len(line) < 400
    assert not (tmp_path / "r").exists()


def test_argv_limit_in_the_runtime_names_the_key():
    with pytest.raises(schema_args.SchemaArgsError, match="config key 'b'"):
        schema_args.config_to_argv({"a": "x" * 60_000, "b": ["y" * 60_000] * 8})
    assert schema_args.config_to_argv({"a": "x" * 60_000}) == ["--a=" + "x" * 60_000]


@pytest.mark.parametrize(
    ("length", "fragment"),
    [
        (1_000_000, "larger than the limit 65536 bytes"),
        (5000, "line 2: longer than the limit 4096"),
    ],
)
def test_megabyte_env_line_is_one_line(tmp_path, arch_copy, length, fragment):
    (arch_copy / "docker" / ".env").write_text("DATASET_ID=1\nAPP_X=" + "x" * length + "\n")
    proc = trainkit(*run_args(arch_copy, "--output", "r"), cwd=tmp_path)
    assert_one_line_error(proc.returncode, proc.stderr, fragment)
    assert not (tmp_path / "r").exists()


def test_overlong_dataset_id_is_one_line(tmp_path, arch_copy):
    long_id = "a" * 200
    proc = trainkit(*run_args(arch_copy, "--output", "r", dataset_id=long_id), cwd=tmp_path)
    assert_one_line_error(proc.returncode, proc.stderr, "more than the limit 128")
    proc = trainkit("dataset", "--out", "m", "--id", long_id, cwd=tmp_path)
    assert_one_line_error(proc.returncode, proc.stderr, "more than the limit 128")
    assert not (tmp_path / "m").exists()


def test_synthetic_image_size_is_bounded(tmp_path):
    before = tree_state(tmp_path)
    started = time.monotonic()
    proc = trainkit("dataset", "--out", "m", "--size", "100000", "--images", "2", cwd=tmp_path)
    assert time.monotonic() - started < 60
    assert_one_line_error(proc.returncode, proc.stderr, "--size 100000: the image side must be")
    proc = trainkit("dataset", "--out", "m", "--images", "1000000000", cwd=tmp_path)
    assert_one_line_error(proc.returncode, proc.stderr, "at most 1,000,000 images")
    assert tree_state(tmp_path) == before
