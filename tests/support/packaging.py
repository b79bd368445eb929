"""Run package.sh like a user does, and snapshot directories to prove nothing else changed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.repo import PACKAGE_SH


def package_sh(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """package.sh finds `trainkit` on PATH: the one of the environment running the tests."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return subprocess.run(
        [str(PACKAGE_SH), *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=120
    )


def snapshot(directory: Path) -> dict[str, bytes | None]:
    return {
        p.relative_to(directory).as_posix(): (p.read_bytes() if p.is_file() else None)
        for p in sorted(directory.rglob("*"))
    }
