"""README statements that name things the code defines, kept equal to the code: the stages
the entrypoint can report in its failure file."""

from __future__ import annotations

import re

from tests.support.repo import REPO_ROOT
from trainkit import vendor

README = REPO_ROOT / "README.md"


def entrypoint_stages() -> set[str]:
    """Every stage docker-entrypoint.sh can write into the failure file: the values it gives
    `_ep_stage` and the names of its run_step steps; `start` (before anything ran) and `train`
    (set just before exec; train.py's own failures are written by the lifecycle) excluded."""
    text = (vendor.RUNTIME_DIR / "docker-entrypoint.sh").read_text()
    stages = set(re.findall(r'_ep_stage="([a-z]+)"', text))
    stages |= set(re.findall(r"^\s*run_step ([a-z]+) ", text, flags=re.MULTILINE))
    return stages - {"start", "train"}


def test_readme_lists_every_entrypoint_failure_stage():
    text = " ".join(README.read_text().split())
    pattern = r"Failures before `train\.py` starts .*? stage that failed \((.*?)\)\."
    (listing,) = re.findall(pattern, text)
    named = re.findall(r"(?:^|; )`([a-z]+)`", listing)
    assert entrypoint_stages() == {"env", "config", "user", "mount", "setup", "args"}
    assert set(named) == entrypoint_stages(), listing
