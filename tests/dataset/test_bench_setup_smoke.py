"""The setup benchmark script runs (1k images only; a smoke test, not a timed test)."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.support.cvat import REPO


def test_bench_setup_prints_a_rate(tmp_path):
    for labels in ("coco", "yolo"):
        proc = subprocess.run(
            [sys.executable, str(REPO / "benchmarks" / "bench_setup.py"), "--sizes", "1000",
             "--labels", labels, "--task", "detection", "--tmp", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=300,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert re.search(r"^\s+1000 images: .* \d+ images/s", proc.stdout, re.M), proc.stdout
    assert list(tmp_path.iterdir()) == []  # temp dirs cleaned up
