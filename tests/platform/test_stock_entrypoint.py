"""The emulation of the platform's stock docker-entrypoint.sh (trainkit/platform/
stock_entrypoint.py): what `source .env` and `eval` do is compared with real bash (for the
inputs the emulation accepts, which by construction expand nothing); what they would expand or
run is refused with one line naming the key; `tree`, `jq` and `time` print like the real ones;
the steps run in the stock script's order, with its exit statuses."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from trainkit.platform import stock_entrypoint as se
from trainkit.platform.stock_entrypoint import ShellRefusal

BASH = shutil.which("bash")

ACCEPTED_ENV_FILES = [
    "A=1\n",
    "# comment\n\nexport B=two words\n",  # `export B=two words`: B=two, and `words` exported
    'export C=\'x y\' D="q\\"uote"\nE=3 # trailing comment\n',
    "F=*.txt\nG='$HOME'\nH=a=b\n",  # no globbing or expansion in assignments / single quotes
    "PRE=changed\nNEW=not-exported\nexport LATER\nLATER=now\n",
    "DATASET_ID='2'\n",  # what the platform's .env rewrite writes (python-dotenv set_key)
    'I=\\$literal\nJ="a\\\\b"\n',
]


def bash_env(text: str, tmp_path: Path) -> dict[str, str]:
    """The environment a command started after `source FILE` gets, from real bash."""
    env_file = tmp_path / "env"
    env_file.write_text(text)
    script = 'source "$1"; env -0'
    proc = subprocess.run(
        [BASH, "-c", script, "bash", str(env_file)],
        env={"PATH": os.environ["PATH"], "PRE": "before"},
        capture_output=True,
        check=True,
    )
    pairs = [item.split("=", 1) for item in proc.stdout.decode().split("\0") if item]
    return {k: v for k, v in pairs if k not in {"PWD", "SHLVL", "_", "OLDPWD"}}


@pytest.mark.parametrize("text", ACCEPTED_ENV_FILES)
def test_source_env_gives_what_bash_gives(text, tmp_path):
    shell = {"PATH": os.environ["PATH"], "PRE": "before"}
    env = dict(shell)
    se.apply_env_file(se.parse_env_file(text), shell, env)
    assert env == bash_env(text, tmp_path)


@pytest.mark.parametrize(
    ("text", "refusal"),
    [
        ("A=$HOME\n", "line 1 (A): the platform's `source .env` would expand `$HOME`"),
        ('A="${X}"\n', "would expand `${X}`"),
        ("A=`id`\n", "would run the command in backticks"),
        ("A=$(id)\n", "would expand `$(id)`"),
        ("B=1 ls\n", "line 1: the platform's `source .env` would run `ls` as a command"),
        ("echo hi\n", "would run `echo` as a command"),
        ("A=1; B=2\n", "would treat `;` as a command separator"),
        ("A=1 && rm -rf x\n", "would treat `&` as a command separator"),
        ("A=x >out\n", "would redirect with `>`"),
        ("A=(1 2)\n", "would treat `(` as shell syntax"),
        ("A=~/data\n", "would expand `~` to a home directory"),
        ("A=/a:~/b\n", "would expand `~`"),
        ("A='open\n", "would fail: unterminated single quote"),
        ("A=1\\\n", "would read on past the end of the line"),
        ("X=1\nA=2\r\n", ".env line 2 (A) ends with a carriage return"),
    ],
)
def test_source_env_refuses_what_bash_would_expand_or_run(text, refusal):
    with pytest.raises(ShellRefusal) as info:
        se.parse_env_file(text)
    assert refusal in str(info.value)
    assert "\n" not in str(info.value)


ACCEPTED_LINES = [
    "--epochs 10 --learning-rate 0.001 --augment",
    "--max-steps -1 --list 1 2 3",
    "--name 'it s'",  # quoted (a site's config_to_args may quote): one word
    "--dict {'a': 1, 'b': 2}",  # a python repr: split into words, no brace expansion
    "--path a=b --empty ''",
    '--q "x y" --e \\!',
]


def bash_words(line: str) -> list[str]:
    proc = subprocess.run(
        [BASH, "-c", "eval \"printf '%s\\0' $LINE\""],
        env={"PATH": os.environ["PATH"], "LINE": line},
        capture_output=True,
        check=True,
    )
    return proc.stdout.decode().split("\0")[:-1]


@pytest.mark.parametrize("line", ACCEPTED_LINES)
def test_eval_splits_config_to_args_output_like_bash(line):
    assert se.eval_arguments(line) == bash_words(line)


@pytest.mark.parametrize(
    ("line", "refusal"),
    [
        ("--epochs 1 --note $HOME/x", "key 'note': the platform's eval would expand `$HOME`"),
        ("--a 1 --b `id`", "key 'b': the platform's eval would run the command in backticks"),
        ("--cmd x;reboot", "key 'cmd': the platform's eval would treat `;`"),
        ("--pattern *.py", "key 'pattern': the platform's eval would expand the glob `*.py`"),
        ("--sizes {1,2}", "key 'sizes': the platform's eval would brace-expand `{1,2}`"),
        ("--dir ~/x", "key 'dir': the platform's eval would expand `~`"),
        ("--tag a #b", "key 'tag': the platform's eval would take the rest of the line"),
        ("--q it's", "key 'q': the platform's eval would fail: unterminated single quote"),
        ("--x 1\n--y 2", "key 'x': the platform's eval would treat the line break"),
        ("--out >file", "key 'out': the platform's eval would redirect"),
    ],
)
def test_eval_refuses_and_names_the_key(line, refusal):
    with pytest.raises(ShellRefusal) as info:
        se.eval_arguments(line)
    assert f"train_config.json {refusal}" in str(info.value)


def test_tree_prints_like_tree(tmp_path):
    real = shutil.which("tree")
    if real is None:
        pytest.skip("`tree` is not installed (Debian package tree, scripts/system-packages.txt)")
    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ("a/x.txt", "a/b/y", ".hidden", "Z", "c"):
        (tmp_path / name).write_text("")
    (tmp_path / "link").symlink_to("a/x.txt")
    (tmp_path / "dirlink").symlink_to("a")
    for locale, utf8 in (("C", False), ("C.UTF-8", True)):
        out = subprocess.run(
            [real, str(tmp_path)],
            env={**os.environ, "LC_ALL": locale},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "\n".join(se.tree_lines(tmp_path, str(tmp_path), utf8)) + "\n" == out
    missing = subprocess.run([real, str(tmp_path / "no")], capture_output=True, text=True)
    assert "\n".join(se.tree_lines(tmp_path / "no", str(tmp_path / "no"))) + "\n" == missing.stdout


def test_jq_pretty_prints_like_jq(tmp_path):
    real = shutil.which("jq")
    if real is None:
        pytest.skip("`jq` is not installed (Debian package jq, scripts/system-packages.txt)")
    config = {"epochs": 10, "learning-rate": 0.001, "flags": [], "nested": {"a": [1, 2]}}
    path = tmp_path / "train_config.json"
    path.write_text(json.dumps(config))
    with path.open() as stdin:
        out = subprocess.run([real, "."], stdin=stdin, capture_output=True, text=True).stdout
    assert se.jq_pretty(path)[0] + "\n" == out


def test_time_report_has_bashs_format():
    bash = subprocess.run([BASH, "-c", "time true"], capture_output=True, text=True).stderr
    pattern = r"\nreal\t\d+m\d+\.\d{3}s\nuser\t\d+m\d+\.\d{3}s\nsys\t\d+m\d+\.\d{3}s\n"
    assert re.fullmatch(pattern, bash)
    import resource

    ours = se.time_report(75.5, resource.getrusage(resource.RUSAGE_CHILDREN))
    assert re.fullmatch(pattern, ours)
    assert "real\t1m15.500s" in ours
    # what run.py's summary counts on after train.py: the report, then "Training ended"
    assert ours.count("\n") + 1 == se.STOCK_TRAILER_LINES


# --- the steps, on a small WORKDIR ------------------------------------------------------------

CONFIG_TO_ARGS = "import sys; sys.stdout.write(open('args.txt').read())\n"
TRAIN = """
import json, os, sys
print("argv", json.dumps(sys.argv[1:]))
print("env", json.dumps({k: os.environ.get(k) for k in ("DATASET_ID", "EXPORTED", "PLAIN")}))
print("Accuracy: 0.75")
"""


def workdir(tmp_path: Path, args: str = "--epochs 2 --name 'a b'", env_file: str = "") -> Path:
    work = tmp_path / "workspace"
    work.mkdir()
    (work / "config_to_args.py").write_text(CONFIG_TO_ARGS)
    (work / "args.txt").write_text(args + "\n")
    (work / "setup.py").write_text("print('setup ran')\n")
    (work / "train.py").write_text(TRAIN)
    (work / "train_config.json").write_text('{"epochs": 2}')
    (work / "export_config.json").write_text("{}")
    (work / ".env").write_text(env_file)
    (tmp_path / "minio" / "datasets" / "7").mkdir(parents=True)
    return work


def run_steps(tmp_path: Path, work: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    spec = tmp_path / "spec.json"
    spec.write_text(
        json.dumps(
            {
                "workdir": str(work),
                "workdir_shown": "/workspace",
                "env": {"PATH": os.environ["PATH"], **env},
                "python": sys.executable,
                "minio": str(tmp_path / "minio"),
            }
        )
    )
    return subprocess.run(
        [sys.executable, se.__file__, "--host", str(spec)],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_steps_in_the_stock_order_with_bashs_env_semantics(tmp_path):
    env_file = "DATASET_ID=7\nexport EXPORTED=yes\nPLAIN=shell-only\n"
    work = workdir(tmp_path, env_file=env_file)
    proc = run_steps(tmp_path, work, {"DATASET_ID": "1"})
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    order = [
        "Sourced additional environment from .env.",
        env_file,  # `cat .env`
        "not running `/bin/bash /mount-s3.sh",
        "/minio/datasets/7\n",  # .env's DATASET_ID wins: the variable was in the environment
        "/workspace\n.\n",  # pwd && tree .
        "Setup started: ",
        "setup ran",
        "Setup ended: ",
        '{\n  "epochs": 2\n}',  # jq '.' < train_config.json
        "Training started: ",
        'argv ["--epochs", "2", "--name", "a b"]',
        'env {"DATASET_ID": "7", "EXPORTED": "yes", "PLAIN": null}',
        "Accuracy: 0.75",
        "Training ended: ",
    ]
    positions = [out.find(marker) for marker in order]
    assert -1 not in positions, [m for m, p in zip(order, positions, strict=True) if p < 0]
    assert positions == sorted(positions)
    assert "ONNX model export will be attemped" not in out  # export_config.json is {}
    assert proc.stderr.count("\nreal\t") == 2  # `time python setup.py`, `time python train.py`


def test_no_dataset_id_exits_1_like_the_stock_script(tmp_path):
    proc = run_steps(tmp_path, workdir(tmp_path), {})
    assert proc.returncode == 1
    assert proc.stdout.strip().endswith("Error: DATASET_ID not in environment.")
    assert "setup ran" not in proc.stdout


def test_a_failing_setup_ends_the_chain_with_its_status(tmp_path):
    work = workdir(tmp_path)
    (work / "setup.py").write_text("raise SystemExit(5)\n")
    proc = run_steps(tmp_path, work, {"DATASET_ID": "7"})
    assert proc.returncode == 5
    assert "Setup ended" not in proc.stdout and "argv" not in proc.stdout


def test_refusals_stop_before_anything_runs(tmp_path):
    work = workdir(tmp_path, env_file="TOKEN=$(cat /etc/passwd)\n")
    proc = run_steps(tmp_path, work, {"DATASET_ID": "7"})
    assert proc.returncode == se.REFUSED
    assert proc.stderr.strip() == (
        se.REFUSAL_PREFIX
        + ".env line 1 (TOKEN): the platform's `source .env` would expand `$(cat /etc/passwd)`"
    )
    assert "setup ran" not in proc.stdout


def test_an_eval_refusal_names_the_key_and_train_never_starts(tmp_path):
    work = workdir(tmp_path, args="--epochs 2 --note $(reboot)")
    proc = run_steps(tmp_path, work, {"DATASET_ID": "7"})
    assert proc.returncode == se.REFUSED
    assert "train_config.json key 'note': the platform's eval would expand" in proc.stderr
    assert "argv" not in proc.stdout


def test_host_runs_refuse_env_keys_that_steer_the_host(tmp_path):
    work = workdir(tmp_path, env_file="PATH=/tmp/evil\n")
    proc = run_steps(tmp_path, work, {"DATASET_ID": "7"})
    assert proc.returncode == se.REFUSED
    assert ".env line 1 sets PATH" in proc.stderr
