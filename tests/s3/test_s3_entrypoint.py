"""The runtime's docker-entrypoint.sh in a workspace like the image's WORKDIR: .env parsing without
evaluation, DATASET_ID handling, the failure file, exec into train.py, re-runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.s3.conftest import base_env
from tests.support.services import skip_or_fail
from trainkit import vendor

# Stand-ins for setup.py / train.py / config_to_args.py: they record what they received.
STUB_SETUP = """\
import json, os, pathlib, sys
out = pathlib.Path(os.environ["OUTPUT_DIR"])
out.mkdir(parents=True, exist_ok=True)
runs = out / "setup-runs"
runs.write_text(runs.read_text() + "x" if runs.exists() else "x")
(out / "setup-env.json").write_text(json.dumps(dict(os.environ)))
if os.environ.get("FAIL_SETUP"):
    print("setup: label 'dgo' is not in <labels>", file=sys.stderr)
    sys.exit(3)
"""
STUB_TRAIN = """\
import json, os, pathlib, sys
out = pathlib.Path(os.environ["OUTPUT_DIR"])
(out / "train.json").write_text(json.dumps({"argv": sys.argv[1:], "pid": os.getpid()}))
"""
STUB_ARGS = """\
import sys
assert sys.argv[1:] == ["--null"], sys.argv
args = ["--lr", "0.01", "--name", "a b;$(touch pwned)`id`", "--sizes", "1", "2", "--flag"]
sys.stdout.write("".join(a + "\\0" for a in args))
"""


def make_workspace(tmp_path: Path, dataset_id: str | None = "1") -> Path:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    vendor.install_runtime(workspace)
    (workspace / "setup.py").write_text(STUB_SETUP)
    (workspace / "train.py").write_text(STUB_TRAIN)
    (workspace / "trainkit_runtime" / "config_to_args.py").write_text(STUB_ARGS)
    if dataset_id:  # a mocked MinIO folder, as a local run has
        image = tmp_path / "minio" / "datasets" / dataset_id / "img.png"
        image.parent.mkdir(parents=True)
        image.write_bytes(b"png")
    return workspace


def run_entrypoint(
    workspace: Path, env: dict[str, str]
) -> tuple[subprocess.CompletedProcess[str], int]:
    proc = subprocess.Popen(
        ["bash", "docker-entrypoint.sh"],
        cwd=workspace,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stdout, stderr = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr), proc.pid


def read_failure(env: dict[str, str]) -> dict:
    return json.loads((Path(env["OUTPUT_DIR"]) / "failure").read_text())


@pytest.mark.hostile
def test_env_file_values_are_data_not_code(tmp_path: Path):
    workspace = make_workspace(tmp_path, dataset_id="7")
    hostile = {
        "APP_SUBST": "$(touch pwned1)",
        "APP_BACKTICK": "`touch pwned2`",
        "APP_CHAIN": "x; touch pwned3 && echo hi",
        "APP_QUOTED": "keeps # and 'inner' quotes",
        "APP_SECRETISH": "s3cr3t-value-never-printed",
    }
    (workspace / ".env").write_text(
        "# platform settings\n"
        "DATASET_ID=7\n"
        f"APP_SUBST={hostile['APP_SUBST']}\n"
        f"APP_BACKTICK={hostile['APP_BACKTICK']}\n"
        f"APP_CHAIN='{hostile['APP_CHAIN']}'\n"
        f'export APP_QUOTED="{hostile["APP_QUOTED"]}"\r\n'
        f"APP_SECRETISH={hostile['APP_SECRETISH']}   # trailing comment\n"
        "\n"
        "OMP_NUM_THREADS=2"
    )
    env = {**base_env(tmp_path), "DATASET_ID": "3", "OID_ACCESS_TOKEN": "oidc-token-xyz"}
    result, _ = run_entrypoint(workspace, env)
    assert result.returncode == 0, result.stderr
    seen = json.loads((tmp_path / "output" / "setup-env.json").read_text())
    assert "OID_ACCESS_TOKEN" not in seen  # only the mount needs it
    for key, value in hostile.items():
        assert seen[key] == value
    assert seen["DATASET_ID"] == "7"  # .env wins: the platform rewrites DATASET_ID there
    assert seen["OMP_NUM_THREADS"] == "2"
    assert not list(tmp_path.rglob("pwned*"))
    assert (
        "Loaded from .env: DATASET_ID APP_SUBST APP_BACKTICK APP_CHAIN APP_QUOTED APP_SECRETISH "
        "OMP_NUM_THREADS" in result.stdout
    )
    for value in hostile.values():
        assert value not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("OUTPUT_DIR=/elsewhere", "line 2: OUTPUT_DIR may not be set by a template .env"),
        ("DATASETS_ROOT=/home", "line 2: DATASETS_ROOT may not be set"),
        ("MINIO_ROOT=/", "line 2: MINIO_ROOT may not be set"),
        ("PYTHONPATH=/tmp/evil", "line 2: PYTHONPATH may not be set"),
        ("PYTHONSTARTUP=/tmp/evil.py", "line 2: PYTHONSTARTUP may not be set"),
        ("LD_PRELOAD=/tmp/evil.so", "line 2: LD_PRELOAD may not be set"),
        ("BASH_ENV=/tmp/evil", "line 2: BASH_ENV may not be set"),
        ("PATH=/nowhere", "line 2: PATH may not be set"),
        ("AWS_SHARED_CREDENTIALS_FILE=/tmp/c", "line 2: AWS_SHARED_CREDENTIALS_FILE may not"),
        ("not a key value line", "line 2: not KEY=VALUE"),
        ("a[$(touch pwned4)]=1", "line 2: not KEY=VALUE"),
        ("APP_LONG=" + "x" * 5000, "line 2: longer than the limit 4096 bytes"),
    ],
)
@pytest.mark.hostile
def test_env_file_key_outside_the_allowlist_stops_the_container(tmp_path, line, fragment):
    """A template .env may set only the allowlisted keys (trainkit_runtime/envfile.py): any
    other line stops the entrypoint before the mount or setup.py, with one line naming it."""
    workspace = make_workspace(tmp_path)
    (workspace / ".env").write_text(f"DATASET_ID=1\n{line}\n")
    result, _ = run_entrypoint(workspace, {**base_env(tmp_path), "DATASET_ID": "1"})
    assert result.returncode != 0
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("docker-entrypoint:")]
    assert len(errors) == 1 and fragment in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    value = line.partition("=")[2]
    if len(value) >= 6:  # values are never printed
        assert value not in result.stdout + result.stderr
    failure = read_failure(base_env(tmp_path))
    assert failure["stage"] == "env" and fragment in failure["message"]
    assert not (tmp_path / "output" / "setup-env.json").exists()  # setup.py never ran
    assert not list(tmp_path.rglob("pwned*"))


def test_train_gets_the_argv_verbatim_by_exec_and_reruns_work(tmp_path: Path):
    workspace = make_workspace(tmp_path)
    env = {**base_env(tmp_path), "DATASET_ID": "1"}
    output = tmp_path / "output"
    output.mkdir()
    (output / "failure").write_text('{"stage": "train"}')  # left by an earlier attempt
    for attempt in (1, 2):  # `docker start` of the same container runs everything again
        result, pid = run_entrypoint(workspace, env)
        assert result.returncode == 0, result.stderr
        train = json.loads((output / "train.json").read_text())
        assert train["argv"] == [
            "--lr",
            "0.01",
            "--name",
            "a b;$(touch pwned)`id`",
            "--sizes",
            "1",
            "2",
            "--flag",
        ]
        assert train["pid"] == pid  # exec: train.py replaced the shell, signals reach it
        assert (output / "setup-runs").read_text() == "x" * attempt
        assert not (output / "failure").exists()
    for step in ("Mount started", "Setup started", "Setup ended", "Training started"):
        assert f"{step}: 20" in result.stdout
    assert "mocked folder" in result.stdout
    assert not list(tmp_path.rglob("pwned"))


def test_missing_dataset_id_writes_failure_file(tmp_path: Path):
    workspace = make_workspace(tmp_path)
    (workspace / ".env").write_text("# no dataset\nAPP_OTHER=1\n")
    result, _ = run_entrypoint(workspace, base_env(tmp_path))
    assert result.returncode != 0
    assert "DATASET_ID is not set" in result.stderr
    failure = read_failure(base_env(tmp_path))
    assert failure["stage"] == "config"
    assert "DATASET_ID is not set" in failure["message"]
    assert not (tmp_path / "output" / "setup-env.json").exists()


@pytest.mark.parametrize("dataset_id", ["../../etc", "a b", "-rf"])
def test_dataset_id_must_be_a_plain_name(tmp_path: Path, dataset_id: str):
    workspace = make_workspace(tmp_path)
    result, _ = run_entrypoint(workspace, {**base_env(tmp_path), "DATASET_ID": dataset_id})
    assert result.returncode != 0
    assert read_failure(base_env(tmp_path))["stage"] == "config"


def test_unknown_dataset_and_failing_setup_say_why(tmp_path: Path):
    workspace = make_workspace(tmp_path)
    env = {**base_env(tmp_path), "DATASET_ID": "2"}
    result, _ = run_entrypoint(workspace, env)
    assert result.returncode != 0
    failure = read_failure(env)
    assert failure["stage"] == "mount"
    assert "datasets/2 does not exist" in failure["message"]

    env.update(DATASET_ID="1", FAIL_SETUP="1")
    result, _ = run_entrypoint(workspace, env)
    assert result.returncode == 3
    assert "label 'dgo' is not in <labels>" in result.stderr  # shown live, too
    failure = read_failure(env)
    assert failure["stage"] == "setup"
    assert failure["exit_status"] == 3
    assert "label 'dgo' is not in <labels>" in failure["traceback"]
    assert not (tmp_path / "output" / "train.json").exists()


def test_failure_written_by_the_step_itself_is_kept(tmp_path: Path):
    workspace = make_workspace(tmp_path)
    (workspace / "setup.py").write_text(
        "import os, pathlib, sys\n"
        "p = pathlib.Path(os.environ['OUTPUT_DIR']); p.mkdir(parents=True, exist_ok=True)\n"
        '(p / \'failure\').write_text(\'{"stage": "setup", "type": "DatasetError"}\')\n'
        "sys.exit(1)\n"
    )
    env = {**base_env(tmp_path), "DATASET_ID": "1"}
    result, _ = run_entrypoint(workspace, env)
    assert result.returncode == 1
    assert read_failure(env) == {"stage": "setup", "type": "DatasetError"}


@pytest.mark.s3fs
def test_s3_failure_is_reported_as_mount_stage(tmp_path: Path):
    workspace = make_workspace(tmp_path, dataset_id=None)
    env = {**base_env(tmp_path), "DATASET_ID": "1", "OID_ACCESS_TOKEN": "tok-secret-1"}
    env.update(S3_HOST="http://127.0.0.1:9", S3_BUCKET_NAME="b")  # nothing listens on port 9
    result, _ = run_entrypoint(workspace, env)
    assert result.returncode != 0
    failure = read_failure(env)
    assert failure["stage"] == "mount"
    assert "cannot connect" in failure["traceback"]
    assert "tok-secret-1" not in result.stdout + result.stderr
    assert "tok-secret-1" not in (tmp_path / "output" / "failure").read_text()


def test_every_python_step_runs_the_interpreter_named_by_PYTHON(tmp_path: Path):
    """setup.py, the argv step and train.py run with $PYTHON (what `trainkit run` sets to its
    own interpreter); a `python`/`python3` on PATH is never used when PYTHON is set."""
    workspace = make_workspace(tmp_path)
    (workspace / "train_config.json").write_text('{"lr": 0.01}')  # shown with json.tool
    calls = tmp_path / "python-calls"
    wrapper = tmp_path / "bin" / "the-python"
    fakes = tmp_path / "fakes"
    for path, text in (
        (wrapper, f'#!/bin/sh\necho "$*" >>"{calls}"\nexec "{sys.executable}" "$@"\n'),
        (fakes / "python", "#!/bin/sh\necho 'python from PATH' >&2\nexit 97\n"),
        (fakes / "python3", "#!/bin/sh\necho 'python3 from PATH' >&2\nexit 97\n"),
    ):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
        path.chmod(0o755)
    env = {**base_env(tmp_path), "DATASET_ID": "1", "PYTHON": str(wrapper)}
    env["PATH"] = f"{fakes}{os.pathsep}{env['PATH']}"
    result, _ = run_entrypoint(workspace, env)
    assert result.returncode == 0, result.stderr
    assert "from PATH" not in result.stderr
    assert calls.read_text().splitlines() == [
        "setup.py",
        "-m json.tool train_config.json",
        "-m trainkit_runtime.config_to_args --null",
        "train.py --lr 0.01 --name a b;$(touch pwned)`id` --sizes 1 2 --flag",
    ]


def test_non_numeric_user_id_fails_in_the_user_stage(tmp_path: Path):
    if os.geteuid() != 0:
        skip_or_fail("the entrypoint switches users (stage `user`) only when it runs as root")
    workspace = make_workspace(tmp_path)
    env = {**base_env(tmp_path), "DATASET_ID": "1", "USER_ID": "abc"}
    result, _ = run_entrypoint(workspace, env)
    assert result.returncode == 1
    failure = read_failure(env)
    assert (failure["stage"], failure["type"]) == ("user", "EntrypointError")
    assert "USER_ID and GROUP_ID must be numeric ids" in failure["message"]
    assert not (tmp_path / "output" / "setup-runs").exists()


def test_failing_argv_step_fails_in_the_args_stage(tmp_path: Path):
    workspace = make_workspace(tmp_path)
    (workspace / "trainkit_runtime" / "config_to_args.py").write_text(
        "import sys\nprint('train_config.json: invalid JSON at line 1', file=sys.stderr)\n"
        "sys.exit(1)\n"
    )
    env = {**base_env(tmp_path), "DATASET_ID": "1"}
    result, _ = run_entrypoint(workspace, env)
    assert result.returncode == 1
    failure = read_failure(env)
    assert failure["stage"] == "args"
    assert failure["exit_status"] == 1
    assert "train_config.json: invalid JSON at line 1" in failure["traceback"]
    assert not (tmp_path / "output" / "train.json").exists()
