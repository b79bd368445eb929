"""Class 1, closed world: a template cannot make the validator, `trainkit run` or the form reach
outside it. `$ref` only within the same document (nothing fetched: a loopback server counts
requests), recursive refs refused, and in directory mode only regular files are read (FIFOs,
device nodes and symlinks are reported, never opened or followed)."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import pytest

from tests.support.hostile import assert_one_line_error, counting_server, trainkit, tree_state
from tests.support.template_tree import ARCH, SCHEMA, TOP, valid_files, write_files, write_zip
from trainkit.schema_refs import closed_validator, ref_problems
from trainkit.validation import validate_path

pytestmark = pytest.mark.hostile

SCHEMA_PATH = f"{ARCH}/config/config.jsonschema"
SECRET = "the-content-of-a-private-file-7f3a"


def schema_with_ref(ref: str) -> bytes:
    schema = json.loads(json.dumps(SCHEMA))
    schema["properties"]["remote"] = {"$ref": ref}
    return json.dumps(schema).encode()


def errors_about(report, fragment: str) -> list[str]:
    return [str(f) for f in report.errors if fragment in f.message]


@pytest.mark.parametrize("kind", ["http", "file"])
def test_remote_ref_is_an_error_and_never_retrieved(tmp_path, kind):
    outside = tmp_path / "private.json"
    outside.write_text(json.dumps({"type": "string", "description": SECRET}))
    with counting_server() as server:
        ref = server.url() if kind == "http" else outside.as_uri()
        files = {**valid_files(), SCHEMA_PATH: schema_with_ref(ref)}
        report = validate_path(write_zip(tmp_path / "t.zip", files))
        assert server.requests == []
    (line,) = errors_about(report, "points outside this file")
    assert repr(ref) in line and f"{TOP}/{SCHEMA_PATH}" in line
    assert SECRET not in "\n".join(report.lines())


def test_closed_validator_refuses_retrieval_itself():
    """Even a validator built on a schema that slipped past ref_problems fetches nothing."""
    with counting_server() as server:
        validator = closed_validator({"$ref": server.url()})
        with pytest.raises(Exception, match=r"schema\.json"):
            validator.is_valid(1)
        assert server.requests == []


@pytest.mark.parametrize(
    ("schema", "fragment"),
    [
        ({"definitions": {"a": {"$ref": "#/definitions/a"}}}, "recursive"),
        ({"properties": {"x": {"$ref": "#"}}}, "recursive"),
        (
            {"definitions": {"a": {"properties": {"b": {"$ref": "#/definitions/b"}}},
                             "b": {"items": {"$ref": "#/definitions/a"}}},
             "properties": {"x": {"$ref": "#/definitions/a"}}},
            "recursive",
        ),
        ({"properties": {"x": {"$ref": "#/definitions/missing"}}}, "does not resolve"),
        ({"properties": {"x": {"$id": "http://elsewhere/", "type": "string"}}}, "only the root"),
    ],
)  # fmt: skip
def test_recursive_or_dangling_refs(schema, fragment):
    problems = ref_problems(schema)
    assert len(problems) == 1 and fragment in problems[0], problems


def test_recursive_ref_in_a_zip_is_one_error(tmp_path):
    schema = json.loads(json.dumps(SCHEMA))
    schema["definitions"] = {
        "node": {"type": "object", "properties": {"n": {"$ref": "#/definitions/node"}}}
    }
    schema["properties"]["tree"] = {"$ref": "#/definitions/node"}
    files = {**valid_files(), SCHEMA_PATH: json.dumps(schema).encode()}
    report = validate_path(write_zip(tmp_path / "t.zip", files))
    assert len(errors_about(report, "recursive $ref")) == 1, report.lines()
    assert not report.ok


def test_trainkit_run_refuses_a_remote_ref_before_anything_runs(tmp_path, arch_copy):
    schema_file = arch_copy / "config" / "config.jsonschema"
    with counting_server() as server:
        schema = json.loads(schema_file.read_text())
        schema["properties"]["epochs"] = {"$ref": server.url()}
        schema_file.write_text(json.dumps(schema))
        before = tree_state(tmp_path)
        proc = trainkit(
            "run", str(arch_copy), "--minio", "minio", "--dataset-id", "1", "--output", "run",
            cwd=tmp_path,
        )  # fmt: skip
        assert server.requests == []
    assert_one_line_error(proc.returncode, proc.stderr, "points outside this file")
    assert tree_state(tmp_path) == before  # no run directory was made


# --- directory mode: only regular files are read --------------------------------------------


def make_template_dir(tmp_path: Path) -> Path:
    root = tmp_path / TOP
    write_files(root, valid_files())
    return root


def test_fifo_in_a_validated_directory_is_reported_not_opened(tmp_path):
    root = make_template_dir(tmp_path)
    custom = root / ARCH / "config" / "custom.json"
    custom.unlink()
    os.mkfifo(custom)  # opening it for reading would block forever
    os.mkfifo(root / ARCH / "docker" / "pipe.json")
    started = time.monotonic()
    report = validate_path(root)
    assert time.monotonic() - started < 60
    for name in ("config/custom.json", "docker/pipe.json"):
        assert any(
            f.path == f"{TOP}/{ARCH}/{name}" and "a FIFO" in f.message for f in report.errors
        ), report.lines()
    assert stat.S_ISFIFO(custom.lstat().st_mode)


@pytest.mark.skipif(os.geteuid() != 0, reason="mknod of a device node needs root")
def test_device_node_in_a_validated_directory_is_reported_not_opened(tmp_path):
    root = make_template_dir(tmp_path)
    device = root / ARCH / "docker" / "zero.json"
    os.mknod(device, stat.S_IFCHR | 0o600, os.makedev(1, 5))  # like /dev/zero: endless bytes
    report = validate_path(root)
    assert any(f.path == f"{TOP}/{ARCH}/docker/zero.json" and "character device" in f.message
               for f in report.errors), report.lines()  # fmt: skip


@pytest.mark.parametrize("mode", ["template root", "architecture dir"])
def test_symlink_in_a_validated_directory_is_not_followed(tmp_path, mode):
    root = make_template_dir(tmp_path)
    private = tmp_path / "private.json"
    private.write_text(json.dumps({"secret": SECRET}))
    link = root / ARCH / "config" / "presets.json"
    link.unlink()
    link.symlink_to(private)
    report = validate_path(root if mode == "template root" else root / ARCH)
    assert any("symlink" in f.message and f.path.endswith(f"{ARCH}/config/presets.json")
               for f in report.errors), report.lines()  # fmt: skip
    assert SECRET not in "\n".join(report.lines())
    assert not report.ok


def test_validate_cli_on_a_fifo_path_is_one_line(tmp_path):
    fifo = tmp_path / "t.zip"
    os.mkfifo(fifo)
    proc = trainkit("validate", str(fifo), cwd=tmp_path, timeout=120)
    assert_one_line_error(proc.returncode, proc.stderr, "not a ZIP file or a directory")
