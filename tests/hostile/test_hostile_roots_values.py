"""Class 3, roots belong to trainkit, and class 4, values that become files or env lines are
checked where they enter. Each case snapshots the whole test directory (the user's files, the
would-be run directory) and asserts that nothing outside the run's roots changed."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.hostile.conftest import run_args
from tests.support.cvat import tag_image, task_xml
from tests.support.hostile import assert_one_line_error, trainkit, tree_state
from tests.support.template_tree import ARCH, TOP, valid_files, write_zip
from trainkit import run_guard
from trainkit.errors import TrainkitError
from trainkit.validation import validate_path
from trainkit_runtime import envfile

pytestmark = pytest.mark.hostile


def test_foreign_output_dir_with_user_files_is_refused(tmp_path, arch_copy):
    mine = tmp_path / "photos"
    (mine / "datasets").mkdir(parents=True)
    (mine / "datasets" / "holiday.jpg").write_bytes(b"\xff\xd8 precious")
    (mine / "notes.txt").write_text("mine")
    before = tree_state(tmp_path)
    proc = trainkit(*run_args(arch_copy, "--output", "photos"), cwd=tmp_path)
    assert_one_line_error(proc.returncode, proc.stderr, "not made by trainkit run")
    assert tree_state(tmp_path) == before


def test_empty_or_marked_output_dir_is_used(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    run_guard.claim_run_dir(empty)
    assert (empty / run_guard.RUN_MARKER).is_file()
    (empty / "output").mkdir()
    run_guard.claim_run_dir(empty)  # marked: a later run may use it again


@pytest.mark.parametrize("root", run_guard.ROOT_NAMES)
def test_run_root_that_is_a_symlink_is_refused(tmp_path, root):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    run_guard.claim_run_dir(run_dir)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("keep")
    (run_dir / root).symlink_to(victim)
    before = tree_state(tmp_path)
    with pytest.raises(TrainkitError, match="is a symlink"):
        run_guard.claim_run_dir(run_dir)
    assert tree_state(tmp_path) == before


@pytest.mark.parametrize(
    "key", ["OUTPUT_DIR", "DATASETS_ROOT", "MINIO_ROOT", "PYTHONPATH", "LD_PRELOAD", "BASH_ENV"]
)
def test_template_env_cannot_move_roots_or_load_code(tmp_path, arch_copy, key):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("keep")
    (arch_copy / "docker" / ".env").write_text(f"# moved roots\n{key}={victim}\n")
    before = tree_state(tmp_path)
    proc = trainkit(*run_args(arch_copy, "--output", "run"), cwd=tmp_path)
    assert_one_line_error(proc.returncode, proc.stderr, f"line 2: {key} may not be set")
    assert tree_state(tmp_path) == before  # no run dir, victim untouched


def test_env_key_policy_is_an_allowlist():
    assert envfile.key_allowed("DATASET_ID") and envfile.key_allowed("APP_BATCH_NOTE")
    refused = (
        "PYTHONHOME PYTHONWARNINGS LD_LIBRARY_PATH GCONV_PATH HOSTALIASES NCCL_NET_PLUGIN "
        "AWS_ACCESS_KEY_ID S3_HOST OID_ACCESS_TOKEN TRAINKIT_TRACEBACK USER_ID HOME IFS ENV "
        "APP_ app_x"
    )
    for key in refused.split():
        assert not envfile.key_allowed(key), key


def test_validator_flags_a_template_env_key(tmp_path):
    files = {**valid_files(), f"{ARCH}/docker/.env": b"PYTHONPATH=/tmp/evil\n"}
    report = validate_path(write_zip(tmp_path / "t.zip", files))
    assert any(
        f.path == f"{TOP}/{ARCH}/docker/.env" and "line 1: PYTHONPATH may not be set" in f.message
        for f in report.errors
    ), report.lines()


def test_validator_warns_about_shell_code_in_env_values(tmp_path):
    """The platform's stock entrypoint `source`s .env: a value with $(...) would run there."""
    files = {**valid_files(), f"{ARCH}/docker/.env": b"APP_NOTE=$(touch /tmp/pwned)\n"}
    report = validate_path(write_zip(tmp_path / "t.zip", files))
    assert any(
        f.level == "WARNING" and "APP_NOTE holds shell characters" in f.message
        for f in report.findings
    ), report.lines()
    assert "touch" not in "\n".join(report.lines())


@pytest.mark.parametrize("kind", ["fifo", "device", "symlink"])
def test_package_out_refuses_anything_but_a_regular_file(tmp_path, kind):
    out = tmp_path / "out.zip"
    if kind == "fifo":
        os.mkfifo(out)
    elif kind == "device":
        if os.geteuid() != 0:
            pytest.skip("mknod of a device node needs root")
        os.mknod(out, stat.S_IFCHR | 0o600, os.makedev(1, 3))
    else:
        (tmp_path / "target.zip").write_bytes(b"mine")
        out.symlink_to(tmp_path / "target.zip")
    templates = Path(__file__).resolve().parents[2] / "templates"
    before = tree_state(tmp_path)
    proc = trainkit(
        "package", "Acme", "Classification", "TinyNet", "--templates", str(templates),
        "--out", str(out), cwd=tmp_path,
    )  # fmt: skip
    assert_one_line_error(proc.returncode, proc.stderr, "refusing to replace it")
    assert tree_state(tmp_path) == before


# --- class 4: values validated where they enter -----------------------------------------------


def test_dataset_id_with_a_newline_cannot_write_env_lines(tmp_path, arch_copy):
    """`--dataset-id $'1\\nPYTHONPATH=<dir>'` used to add a PYTHONPATH line to the workspace
    .env, and the attacker's sitecustomize.py then ran in setup.py."""
    evil = tmp_path / "evil"
    evil.mkdir()
    pwned = tmp_path / "pwned"
    (evil / "sitecustomize.py").write_text(f"open({str(pwned)!r}, 'w').write('x')\n")
    hostile_id = f"1\nPYTHONPATH={evil}"
    (tmp_path / "minio" / "datasets" / hostile_id).mkdir(parents=True)
    before = tree_state(tmp_path)
    proc = trainkit(*run_args(arch_copy, "--output", "run", dataset_id=hostile_id), cwd=tmp_path)
    line = assert_one_line_error(proc.returncode, proc.stderr, "is not a plain directory name")
    assert "\\n" in line  # the value is shown escaped, on the same line
    assert not pwned.exists()
    assert tree_state(tmp_path) == before


@pytest.mark.parametrize("dataset_id", ["1\nX=1", "1\r", "a\u202eb", "1\x1b[2K"])
def test_synthetic_dataset_id_is_checked(tmp_path, dataset_id):
    proc = trainkit("dataset", "--out", "m", "--id", dataset_id, cwd=tmp_path)
    assert_one_line_error(proc.returncode, proc.stderr, "is not a plain directory name")
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("name", ["Acme\nX", "A" * 65, "Acme\u202e"])
def test_package_names_are_checked(tmp_path, name):
    proc = trainkit("package", name, "Classification", "TinyNet", "--out", "o.zip", cwd=tmp_path)
    assert_one_line_error(proc.returncode, proc.stderr, "must match")
    assert not (tmp_path / "o.zip").exists()


@pytest.mark.parametrize("label", ["dog\nOK: fine", "dog\u202e", "do\x85g", "x" * 300])
def test_label_names_are_checked_where_they_enter(runtime, label):
    runtime.add_files("a.jpg")
    xml = task_xml(["cat", label], tag_image("a.jpg", "cat"))
    runtime.write_annotations(xml)
    with pytest.raises(runtime.dataset.DatasetError, match="<labels>") as err:
        runtime.cvat.get_cvat_dataset()
    message = str(err.value)
    assert "\n" not in message and "\x85" not in message and "\u202e" not in message
    assert list(runtime.datasets.iterdir()) == []  # nothing written


def test_entrypoint_dataset_id_rule_is_the_runtime_one():
    """docker-entrypoint.sh checks DATASET_ID before Python runs; its copy of the pattern must
    be trainkit_runtime.values.DATASET_ID_PATTERN (one rule, two languages)."""
    import re

    from trainkit import vendor
    from trainkit_runtime import values

    text = (vendor.RUNTIME_DIR / "docker-entrypoint.sh").read_text()
    (copy,) = re.findall(r"^readonly _EP_DATASET_ID_RE='([^']*)'$", text, re.M)
    assert copy == values.DATASET_ID_PATTERN
    assert f"-gt {values.MAX_DATASET_ID_LENGTH} " in text
