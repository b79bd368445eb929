"""`trainkit form` as a command: prints the URL, serves until Ctrl-C, stops with exit 0 or 130
and no traceback; bad arguments are one line."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.support.repo import EXAMPLES_DIR

ARCH = EXAMPLES_DIR / "Acme" / "Detection" / "TinyDet"


def test_serves_then_ctrl_c_stops_cleanly(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "trainkit", "form", str(ARCH), "--no-browser", "--port", "0"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert "http://127.0.0.1:" in line, line
        assert f"saves into {tmp_path}" in line  # --out defaults to the current directory
        url = line.split("http://", 1)[1].split()[0]
        with urllib.request.urlopen(f"http://{url}api/forms", timeout=10) as response:
            forms = json.load(response)
        assert forms["title"] == "Acme / Detection / TinyDet"
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode in (0, 130)
    assert "Traceback" not in stderr + stdout
    assert "stopped" in stderr


def test_bad_out_dir_is_one_line(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing")
    result = subprocess.run(
        [sys.executable, "-m", "trainkit", "form", str(ARCH), "--no-browser", "--out", missing],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert "not a directory" in result.stderr


def test_not_an_architecture_is_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "trainkit", "form", str(tmp_path), "--no-browser"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("trainkit form: error: ")
    assert "not an architecture directory" in result.stderr
