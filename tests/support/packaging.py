"""Run package.sh like a user does, and snapshot directories to prove nothing else changed."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from trainkit import paths

PACKAGE_SH = paths.REPO_ROOT / "package.sh"


def package_sh(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [str(PACKAGE_SH), *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=120
    )


def snapshot(directory: Path) -> dict[str, bytes | None]:
    return {
        p.relative_to(directory).as_posix(): (p.read_bytes() if p.is_file() else None)
        for p in sorted(directory.rglob("*"))
    }
