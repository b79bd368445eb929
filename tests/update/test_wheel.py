"""The wheel ships what `trainkit update` needs: the 0.1.0 template and its common/ (every file,
dotfiles included), and an installed (not editable) trainkit bakes it from site-packages."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.support.repo import REPO_ROOT

pytestmark = pytest.mark.slow

BAKE_FROM_UNPACKED = """
import json, sys
from trainkit.update import versions
old = versions.by_name("0.1.0")
bake = versions.bake(old, {"task": "detection"})
print(json.dumps({"template": str(old.template_dir), "files": sorted(bake.files)}))
"""


def test_wheel_ships_the_history_and_bakes_it_installed(tmp_path: Path) -> None:
    history = "trainkit/update/history/"
    tracked = subprocess.run(
        ["git", "ls-files", "-z", history], cwd=REPO_ROOT, capture_output=True, check=True
    ).stdout.decode().split("\0")  # fmt: skip
    tracked = sorted(filter(None, tracked))
    assert any(name.endswith("/docker/.env") for name in tracked)
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
    subprocess.run(
        [*pip_wheel, "-w", str(tmp_path / "dist"), str(REPO_ROOT)], check=True, timeout=600
    )
    (wheel,) = (tmp_path / "dist").glob("trainkit-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        assert sorted(n for n in names if n.startswith(history)) == tracked
        assert "trainkit/update/command.py" in names
        zf.extractall(tmp_path / "site")
    proc = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(tmp_path / 'site')!r})\n"
         + BAKE_FROM_UNPACKED],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["template"].startswith(str(tmp_path / "site"))
    assert "docker/run_control.py" in result["files"] and "docker/.env" in result["files"]
