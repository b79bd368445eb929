"""The machine-requirement gate of tests/conftest.py, proven on the real container suite: with
no working engine on PATH, every test in tests/container skips with the reason (locally) or
fails with it (CI=true), and none of its session fixtures ran: no engine command other than the
availability probe (`info`) was issued, so the minutes-long base-image build never started.

The engines are made unavailable by putting fake `docker` and `podman` first on PATH; they
answer every command with an error and log their argv."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.support.repo import REPO_ROOT

FAKE_ENGINE = """\
#!/bin/sh
printf '%s\\n' "$(basename "$0") $*" >>"$FAKE_ENGINE_LOG"
echo "fake engine: cannot connect to the daemon" >&2
exit 125
"""


def run_container_suite(tmp_path: Path, ci: bool) -> tuple[list[ET.Element], list[str], str]:
    """pytest over tests/container with the fake engines; (testcases, engine calls, output)."""
    fakes = tmp_path / "bin"
    fakes.mkdir()
    for name in ("docker", "podman"):
        (fakes / name).write_text(FAKE_ENGINE)
        (fakes / name).chmod(0o755)
    log = tmp_path / "engine-calls.log"
    log.touch()
    report = tmp_path / "report.xml"
    env = {k: v for k, v in os.environ.items() if k not in {"CI", "CONTAINERS_CONF"}}
    env.update(PATH=f"{fakes}{os.pathsep}{env.get('PATH', '')}", FAKE_ENGINE_LOG=str(log))
    if ci:
        env["CI"] = "true"
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "tests/container", "-p", "no:cacheprovider"),
            *("-m", "slow or not slow", "-q", "-rA", f"--junitxml={report}"),
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    cases = list(ET.parse(report).getroot().iter("testcase"))
    assert cases, proc.stdout + proc.stderr
    return cases, log.read_text().splitlines(), proc.stdout + proc.stderr


def outcome(case: ET.Element) -> tuple[str, str]:
    """('passed'|'skipped'|'error'|'failure', message) of one junit testcase."""
    for kind in ("error", "failure", "skipped"):
        if (child := case.find(kind)) is not None:
            return kind, child.get("message", "") + (child.text or "")
    return "passed", ""


@pytest.mark.parametrize("ci", [False, True], ids=["local", "ci"])
def test_container_tests_skip_or_fail_before_any_session_fixture(tmp_path, ci):
    cases, engine_calls, output = run_container_suite(tmp_path, ci)
    outcomes = {case.get("name"): outcome(case) for case in cases}
    expected_kind = "error" if ci else "skipped"  # a setup-phase failure is reported as error
    for name, (kind, message) in outcomes.items():
        assert kind == expected_kind, (name, kind, message, output[-3000:])
        assert "no container engine" in message, (name, message)
        assert "fake engine: cannot connect" in message, (name, message)
        assert "TrainkitError" not in message, (name, message)  # not a fixture's exception
        if ci:
            assert "CI=true but this test cannot run" in message, (name, message)
    # Only the availability probe ran, once per engine: no build, no import, no run.
    assert sorted(engine_calls) == sorted(
        ["docker info --format {{.OSType}}", "podman info --format {{.Host.OS}}"]
    ), engine_calls
    if ci:
        assert "CI=true but this test cannot run: no container engine" in output
