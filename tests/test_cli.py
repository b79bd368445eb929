import os
import re
import subprocess
import sys

import boto3
import pytest

# Every subcommand and its one-line help, in --help order (independent of trainkit.cli, which
# skips a command whose module is missing: that must not go unnoticed).
COMMANDS = [
    ("new", "generate an architecture from trainkit's template (cookiecutter)"),
    ("dataset", "write a synthetic CVAT dataset into a mocked MinIO folder"),
    ("run", "train an architecture locally, the way the platform would"),
    ("package", "build train-container-publish.zip for one architecture (= ./package.sh)"),
    ("validate", "check a template ZIP or directory the way the platform does, and stricter"),
    ("upload", "validate a template ZIP and upload it to the platform"),
    ("export", "re-export ONNX from a checkpoint without retraining"),
    ("form", "show the platform's form for an architecture; save train/export configs"),
    ("update", "move an architecture to the installed template, keeping your edits"),
]


def trainkit(*args: str) -> subprocess.CompletedProcess:
    # Wide enough that argparse puts each help text on its command's line.
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "trainkit", *args], capture_output=True, text=True, env=env
    )


def test_help_lists_every_command_with_its_help_line():
    proc = trainkit("--help")
    assert proc.returncode == 0, proc.stderr
    listed = re.findall(r"^ {4}(\S+) {2,}(\S.*)$", proc.stdout, flags=re.MULTILINE)
    assert listed == COMMANDS, proc.stdout
    assert proc.stdout.startswith("usage: trainkit [-h] [--version] [-v] COMMAND ...")
    assert "add_parser" not in proc.stdout  # the user's description, not the developers' docstring


def test_version_is_the_installed_distributions():
    from importlib.metadata import version

    proc = trainkit("--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"trainkit {version('trainkit')}\n"


@pytest.mark.parametrize("command", [name for name, _ in COMMANDS])
def test_every_command_has_its_own_help(command):
    proc = trainkit(command, "--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"usage: trainkit {command} "), proc.stdout[:200]


def test_unknown_command_is_a_usage_error():
    proc = subprocess.run(
        [sys.executable, "-m", "trainkit", "no-such-command"], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "invalid choice" in proc.stderr


def test_moto_fixture_serves_s3(moto):
    s3 = boto3.client(
        "s3",
        endpoint_url=moto.url,
        aws_access_key_id="k",
        aws_secret_access_key="s",
        region_name="us-east-1",
    )
    s3.create_bucket(Bucket="probe")
    s3.put_object(Bucket="probe", Key="a/b.txt", Body=b"x")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="probe")["Contents"]]
    assert keys == ["a/b.txt"]
    assert any("list-type=2" in line for line in moto.requests_seen())
