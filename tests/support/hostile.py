"""Helpers of the hostile-input suite (tests/hostile/, marker `hostile`): a loopback HTTP
server that counts requests (nothing may be fetched), tree snapshots (nothing outside the run's
roots may change), the forms a secret takes on the wire (none may be printed), and the
"one line, no traceback" check of an error exit."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import urllib.parse
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.support.serving import serving


class _CountingHandler(BaseHTTPRequestHandler):
    server: CountingServer

    def log_message(self, *args) -> None:
        pass

    def _count(self) -> None:
        self.server.requests.append(f"{self.command} {self.path}")
        body = b'{"type": "object", "properties": {"x": {"type": "integer"}}}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_HEAD = _count


class CountingServer(ThreadingHTTPServer):
    """Answers every request with a small JSON schema and records it."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _CountingHandler)
        self.requests: list[str] = []

    def url(self, path: str = "/schema.json") -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


@contextmanager
def counting_server() -> Iterator[CountingServer]:
    with serving(CountingServer()) as server:
        yield server


def tree_state(directory: Path) -> dict[str, tuple[int, bytes | str | None]]:
    """Every entry below directory (not following links): its mode and content/link target."""
    state: dict[str, tuple[int, bytes | str | None]] = {}
    for path in sorted(directory.rglob("*")):
        st = path.lstat()
        if path.is_symlink():
            content: bytes | str | None = os.readlink(path)
        elif path.is_file():
            content = path.read_bytes()
        else:
            content = None
        state[path.relative_to(directory).as_posix()] = (st.st_mode, content)
    return state


def secret_forms(secret: str) -> list[str]:
    """How a secret can appear in output: raw, URL-encoded and base64 (alone and after the
    usual prefixes, at every byte alignment) — computed here, independently of trainkit."""
    forms = {secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret)}
    for prefix in ("", "Bearer ", "x", "xy", "user:"):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            text = encode((prefix + secret).encode()).decode()
            skip = -(-len(prefix) * 4 // 3) + 1  # past the characters the prefix touches
            forms.add(text[skip : skip + 12])
    forms.add(secret[:8])  # a prefix that survived truncation
    return sorted(f for f in forms if len(f) >= 6)


def assert_no_secret(secret: str, texts: Iterable[str]) -> None:
    joined = "\n".join(texts)
    for form in secret_forms(secret):
        assert form not in joined, f"secret form {form!r} printed:\n{joined}"


def error_lines(stderr: str) -> list[str]:
    """Lines of stderr that are not argparse's usage block or warnings."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    return [
        line
        for line in lines
        if not line.startswith(("usage:", " ")) and "warning" not in line.lower()
    ]


def assert_one_line_error(code: int, stderr: str, fragment: str) -> str:
    assert code != 0, stderr
    assert "Traceback" not in stderr, stderr
    lines = error_lines(stderr)
    assert len(lines) == 1, stderr
    assert fragment in lines[0], stderr
    return lines[0]


def trainkit(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300):
    """The installed CLI as a user runs it (a subprocess: real exit code and stderr)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "TRAINKIT_"))}
    return subprocess.run(
        [sys.executable, "-m", "trainkit", *args],
        cwd=cwd,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
