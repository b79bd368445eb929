"""The tests run the same with or without an activated virtualenv: what they start (the
entrypoint, setup.py, config_to_args, train.py, ruff, package.sh's trainkit) runs with the
interpreter and tools of the environment running the tests (sys.executable), never with
whatever `python`, `python3`, `ruff` or `trainkit` comes first on PATH.

Proof: a representative subset runs in a child pytest whose PATH has this environment's bin
directory removed and, first, fake `python`, `python3`, `ruff` and `trainkit` that fail loudly
and log that they were called. The subset passes, and no fake was called."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.repo import REPO_ROOT

SUBSET = [
    "tests/s3/test_s3_entrypoint.py",
    "tests/runtime/test_config_to_args.py",
    "tests/dataset/test_setup_subprocess.py",
    "tests/template/test_template_bake.py::test_baked_python_is_ruff_clean",
    "tests/template/test_template_workspace.py",
    "tests/packaging/test_package_zip.py",
]
FAKE = """\
#!/bin/sh
echo "$(basename "$0") $*" >>"$FAKE_TOOL_LOG"
echo "$(basename "$0") from PATH was called; tests must use sys.executable's environment" >&2
exit 97
"""


def stripped_environment(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """os.environ as a shell without the venv activated, plus failing fakes first on PATH."""
    fakes = tmp_path / "fake-bin"
    fakes.mkdir()
    for tool in ("python", "python3", "ruff", "trainkit"):
        (fakes / tool).write_text(FAKE)
        (fakes / tool).chmod(0o755)
    venv_bin = Path(sys.executable).parent
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and Path(p) != venv_bin]
    log = tmp_path / "fake-calls.log"
    log.touch()
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH", "PYTHON"}}
    env.update(PATH=os.pathsep.join([str(fakes), *path]), FAKE_TOOL_LOG=str(log))
    return env, log


@pytest.mark.slow
def test_subset_passes_without_the_venv_on_path(tmp_path):
    env, log = stripped_environment(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", *SUBSET, "-p", "no:cacheprovider", "-q"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert log.read_text() == "", f"tools from PATH were called:\n{log.read_text()}"
    assert " passed" in proc.stdout.splitlines()[-1], proc.stdout[-500:]
