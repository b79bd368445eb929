"""trainkit_runtime.config_to_args as the entrypoints run it: a subprocess in the WORKDIR
(`python -m trainkit_runtime.config_to_args`, and as the legacy `config_to_args.py` shim)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.platform_stock import stock_entrypoint_argv
from trainkit import vendor

MODULE = ["-m", "trainkit_runtime.config_to_args"]

HOSTILE = {
    "cmd": "; rm -rf / ; touch pwned",
    "subst": "$(touch pwned)",
    "ticks": "`touch pwned`",
    "quotes": "it's \"quoted\" \\ and '$HOME'",
    "newline": "a\nb; touch pwned\n",
    "dash": "--epochs=999",
    "glob": "*",
    "unicode": "ünï ✓",
    "list": ["$(touch pwned)", "-x", "a b", "'", ""],
    "empty": "",
    "flag": True,
    "off": False,
    "none": None,
    "train-split": "$(touch pwned)",
}


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, *MODULE, *args], cwd=cwd, capture_output=True, check=False
    )


def write_config(cwd: Path, config: dict[str, Any]) -> None:
    (cwd / "train_config.json").write_text(json.dumps(config), encoding="utf-8")


# What train.py must receive for HOSTILE: every value verbatim, `--key=value` (so a value
# starting with "-" stays a value), lists repeat the flag, true is a bare flag, false/None and
# the split keys are left out.
HOSTILE_ARGV = [
    "--cmd=; rm -rf / ; touch pwned",
    "--subst=$(touch pwned)",
    "--ticks=`touch pwned`",
    "--quotes=it's \"quoted\" \\ and '$HOME'",
    "--newline=a\nb; touch pwned\n",
    "--dash=--epochs=999",
    "--glob=*",
    "--unicode=ünï ✓",
    "--list=$(touch pwned)",
    "--list=-x",
    "--list=a b",
    "--list='",
    "--list=",
    "--empty=",
    "--flag",
]


def test_null_output_is_the_argv_list(tmp_path: Path) -> None:
    write_config(tmp_path, HOSTILE)
    result = run(tmp_path, "--null")
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"".join(arg.encode() + b"\0" for arg in HOSTILE_ARGV)


def test_line_is_one_line_and_eval_safe(tmp_path: Path) -> None:
    write_config(tmp_path, HOSTILE)
    result = run(tmp_path)
    assert result.returncode == 0, result.stderr
    line = result.stdout.decode()
    assert line.count("\n") == 1 and line.endswith("\n")
    script = f'eval "set -- $({sys.executable} config_to_args.py)"; printf "%s\\0" "$@"'
    vendor.write_legacy_shims(tmp_path, ["config_to_args.py"])
    evaled = subprocess.run(
        ["bash", "-c", script], cwd=tmp_path, capture_output=True, check=True
    ).stdout
    assert [a.decode() for a in evaled.split(b"\0")[:-1]] == HOSTILE_ARGV
    assert not (tmp_path / "pwned").exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "__pycache__") == [
        "config_to_args.py",
        "train_config.json",
    ]


def test_line_run_by_the_stock_entrypoint_reaches_train_py_verbatim(tmp_path: Path) -> None:
    """Our config_to_args.py (the legacy shim a ZIP root carries) under the platform's own
    train command, `eval "time python train.py $(python config_to_args.py)"`."""
    vendor.write_legacy_shims(tmp_path, ["config_to_args.py"])
    argv = stock_entrypoint_argv(HOSTILE, tmp_path, own_config_to_args=True)
    assert argv == HOSTILE_ARGV
    assert not list(tmp_path.rglob("pwned"))


def test_schema_in_cwd_types_the_args(tmp_path: Path) -> None:
    write_config(tmp_path, {"n": 3.0, "x": 1.5})
    (tmp_path / "config.jsonschema").write_text(
        json.dumps({"properties": {"n": {"type": "integer"}}})
    )
    assert run(tmp_path, "--null").stdout == b"--n=3\0--x=1.5\0"


def test_empty_config_prints_an_empty_line(tmp_path: Path) -> None:
    write_config(tmp_path, {"off": False, "train-split": 0.8})
    assert run(tmp_path).stdout == b"\n"
    assert run(tmp_path, "--null").stdout == b""


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "train_config.json: file not found"),
        ('{"epochs": 3,\n "lr": }', "train_config.json: invalid JSON at line 2 column 8"),
        ("[1, 2]", "expected a JSON object, got list"),
        ('{"bad key": 1}', "config key 'bad key' cannot become a command-line flag"),
        ('{"a": "\\ud800"}', "config key 'a': value '\\ud800' is not valid Unicode"),
    ],
)
def test_bad_config_is_one_clear_line_and_exit_1(
    tmp_path: Path, content: str | None, expected: str
) -> None:
    if content is not None:
        (tmp_path / "train_config.json").write_text(content)
    result = run(tmp_path)
    assert result.returncode == 1
    assert result.stdout == b""
    err = result.stderr.decode()
    assert err.count("\n") == 1, err
    assert expected in err
    if content is not None:
        assert (tmp_path / "train_config.json").read_text() == content


def test_invalid_schema_is_reported(tmp_path: Path) -> None:
    write_config(tmp_path, {"a": 1})
    (tmp_path / "config.jsonschema").write_text("{")
    result = run(tmp_path)
    assert result.returncode == 1
    assert "config.jsonschema: invalid JSON" in result.stderr.decode()
