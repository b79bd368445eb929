"""The platform's stock runtime files, run as they are (trainkit/platform/backend, MIT, NOTICE),
for the parity tests: what the stock `config_to_args.py` prints, and what `train.py` receives
when the stock `docker-entrypoint.sh`'s own train command line runs it. Nothing here
re-implements them: a change of the shipped files changes what the tests compare against."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import runpy
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from trainkit.paths import PLATFORM_DIR

STOCK_COMMON = PLATFORM_DIR / "model-training" / "common"
STOCK_CONFIG_TO_ARGS = STOCK_COMMON / "config_to_args.py"
STOCK_ENTRYPOINT = STOCK_COMMON / "docker-entrypoint.sh"
# train.py stand-in: the argv it was started with, as JSON.
ARGV_DUMPER = "import json, sys\nprint(json.dumps(sys.argv[1:]))\n"


def stock_config_to_args_line(config: dict) -> str:
    """The line the stock config_to_args.py prints for `config` (run in-process in a temp dir
    holding train_config.json, the file it reads), without the trailing newline."""
    with tempfile.TemporaryDirectory(prefix="stock-c2a-") as tmp:
        Path(tmp, "train_config.json").write_text(json.dumps(config), encoding="utf-8")
        out = io.StringIO()
        cwd = os.getcwd()
        os.chdir(tmp)
        try:
            with contextlib.redirect_stdout(out):
                runpy.run_path(str(STOCK_CONFIG_TO_ARGS), run_name="__main__")
        finally:
            os.chdir(cwd)
    return out.getvalue().removesuffix("\n")


def stock_train_command() -> str:
    """The stock entrypoint's command that starts training (`eval "time python train.py
    $(python config_to_args.py)"`), taken from the shipped docker-entrypoint.sh."""
    text = STOCK_ENTRYPOINT.read_text(encoding="utf-8")
    found = re.findall(r"^\s*&&\s*(eval .*train\.py.*config_to_args\.py.*?)\s*\\?$", text, re.M)
    if len(found) != 1:
        raise AssertionError(f"{STOCK_ENTRYPOINT}: expected one train command, found {found}")
    return found[0]


def stock_entrypoint_argv(config: dict, workdir: Path, *, own_config_to_args: bool = False):
    """What train.py's sys.argv[1:] is when the stock entrypoint's train command runs in
    `workdir` with `config` as train_config.json and the stock config_to_args.py (or, with
    `own_config_to_args`, the config_to_args.py already in `workdir`: what a template ships).
    `python` is this interpreter (a shim first on PATH), as in an image whose python has the
    deps."""
    workdir.mkdir(parents=True, exist_ok=True)
    if not own_config_to_args:
        (workdir / "config_to_args.py").write_bytes(STOCK_CONFIG_TO_ARGS.read_bytes())
    (workdir / "train_config.json").write_text(json.dumps(config), encoding="utf-8")
    (workdir / "train.py").write_text(ARGV_DUMPER, encoding="utf-8")
    shim = workdir / ".bin"
    shim.mkdir(exist_ok=True)
    # A script, not a symlink: a symlinked venv python would not find its pyvenv.cfg.
    (shim / "python").write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} "$@"\n')
    (shim / "python").chmod(0o755)
    env = {**os.environ, "PATH": f"{shim}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run(
        ["bash", "-c", stock_train_command()],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(proc.stdout)
