"""Real services the tests start on loopback, and checks for what the machine offers."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import requests

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def skip_or_fail(reason: str) -> NoReturn:
    """Skip with `reason` where this machine lacks something a test needs; under CI=true fail
    with it instead (CI must run every test)."""
    import pytest

    if IN_CI:
        pytest.fail(f"CI=true but this test cannot run: {reason}", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class MotoServer:
    """A moto server (S3 + STS) on loopback; `log` collects its request lines."""

    url: str
    port: int
    log: Path

    def requests_seen(self) -> list[str]:
        """The request lines the server logged so far (e.g. `GET /bucket?list-type=2 ...`)."""
        return [
            line
            for line in self.log.read_text(errors="replace").splitlines()
            if '"' in line
            and (
                "GET " in line
                or "HEAD " in line
                or "PUT " in line
                or "POST " in line
                or "DELETE " in line
            )
        ]


@contextlib.contextmanager
def moto_server(log_dir: Path) -> Iterator[MotoServer]:
    """Start `python -m moto.server` on a free loopback port; stop it on exit."""
    port = free_port()
    log = log_dir / f"moto-{port}.log"
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"moto server exited early: {log.read_text()[-2000:]}")
            try:
                requests.get(f"{url}/moto-api/", timeout=1)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"moto server did not start on {url}") from None
                time.sleep(0.2)
        yield MotoServer(url=url, port=port, log=log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def fuse_missing() -> str | None:
    """Why a real s3fs mount cannot work here, or None when it can."""
    if not Path("/dev/fuse").exists():
        return "/dev/fuse does not exist"
    for tool in ("s3fs", "fusermount"):
        if shutil.which(tool) is None and not (
            tool == "fusermount" and shutil.which("fusermount3")
        ):
            return (
                f"{tool} is not installed (Debian package {'s3fs' if tool == 's3fs' else 'fuse3'})"
            )
    if os.geteuid() != 0 and not os.access("/dev/fuse", os.R_OK | os.W_OK):
        return "/dev/fuse is not accessible to this user"
    return None
