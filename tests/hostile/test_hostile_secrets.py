"""Class 5, secrets never printed: every error path of `trainkit upload` and of the runtime's
`s3_credentials.py` keeps the token out of stdout/stderr in its raw, URL-encoded and base64
forms (redacted BEFORE cutting to length), multi-line token files are refused without echoing
them, URL user info is masked, server `detail` text is redacted, and argparse never echoes a
value typed after a mistyped flag. Servers are loopback stand-ins that echo what they got."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.support.hostile import assert_no_secret, assert_one_line_error, trainkit
from tests.support.serving import serving
from tests.support.template_tree import valid_files, write_zip
from trainkit_runtime import s3_credentials

pytestmark = pytest.mark.hostile

TOKEN = "eyJhbGciOiJSUzI1NiJ9.hostile-s3cr3t-t0ken+/=value"


class EchoHandler(BaseHTTPRequestHandler):
    """Answers 400 with a body that echoes the request back in every form."""

    server: EchoServer

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        auth = self.headers.get("Authorization", "")
        self.server.requests += 1
        echoed = (
            f"{auth} {body[:4000].decode('utf-8', 'replace')} "
            f"b64={base64.b64encode(auth.encode()).decode()} "
            f"quoted={urllib.parse.quote(auth, safe='')} "
        )
        if self.server.kind == "json":
            data = json.dumps({"detail": "x" * 150 + echoed}).encode()
            ctype = "application/json"
        else:  # an STS-style XML error whose message echoes the form body
            data = (
                "<ErrorResponse><Error><Code>InvalidIdentityToken</Code><Message>"
                f"{'y' * 150}{echoed.replace('&', '&amp;').replace('<', '&lt;')}"
                "</Message></Error></ErrorResponse>"
            ).encode()
            ctype = "text/xml"
        self.send_response(400)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class EchoServer(ThreadingHTTPServer):
    def __init__(self, kind: str) -> None:
        super().__init__(("127.0.0.1", 0), EchoHandler)
        self.kind = kind
        self.requests = 0


@contextmanager
def echo_server(kind: str) -> Iterator[EchoServer]:
    with serving(EchoServer(kind)) as server:
        yield server


@pytest.fixture
def zip_path(tmp_path) -> Path:
    return write_zip(tmp_path / "train-container-publish.zip", valid_files())


def token_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "token"
    path.write_text(text)
    path.chmod(0o600)
    return path


def test_upload_redacts_the_echoed_token_in_every_form(tmp_path, zip_path):
    with echo_server("json") as server:
        url = f"http://127.0.0.1:{server.server_address[1]}/api"
        tok = token_file(tmp_path, TOKEN + "\n")
        proc = trainkit("upload", str(zip_path), "--url", url, "--token-file", str(tok),
                        cwd=tmp_path)  # fmt: skip
        assert server.requests == 1
    line = assert_one_line_error(proc.returncode, proc.stderr, "answered 400")
    assert "<redacted>" in line
    assert_no_secret(TOKEN, [proc.stdout, proc.stderr])


@pytest.mark.parametrize(
    "content", [TOKEN + "\nsecond-line-" + TOKEN, "Bearer " + TOKEN, TOKEN + "\x1b[2K"]
)
def test_bad_token_file_is_refused_without_echo(tmp_path, zip_path, content):
    tok = token_file(tmp_path, content)
    proc = trainkit("upload", str(zip_path), "--url", "http://127.0.0.1:9/api",
                    "--token-file", str(tok), cwd=tmp_path)  # fmt: skip
    assert_one_line_error(proc.returncode, proc.stderr, "content not shown")
    assert_no_secret(TOKEN, [proc.stdout, proc.stderr])


def test_url_user_info_is_masked(tmp_path, zip_path):
    tok = token_file(tmp_path, TOKEN)
    url = "http://alice:pa55-" + "w0rd-secret@127.0.0.1:9/api"  # nothing listens on port 9
    proc = trainkit("upload", str(zip_path), "--url", url, "--token-file", str(tok),
                    "--retries", "0", cwd=tmp_path)  # fmt: skip
    line = assert_one_line_error(proc.returncode, proc.stderr, "cannot reach http://***@127.0.0.1")
    assert "pa55-w0rd-secret" not in proc.stdout + proc.stderr and "alice" not in line
    assert_no_secret(TOKEN, [proc.stdout, proc.stderr])


@pytest.mark.parametrize("argv", [["--tok", TOKEN], [f"--tok={TOKEN}"], ["--timeout", TOKEN]])
def test_mistyped_flag_value_is_masked_by_argparse(tmp_path, zip_path, argv):
    proc = trainkit("upload", str(zip_path), "--url", "http://127.0.0.1:9/api", *argv,
                    cwd=tmp_path)  # fmt: skip
    assert_one_line_error(proc.returncode, proc.stderr, "***")
    assert_no_secret(TOKEN, [proc.stdout, proc.stderr])


def test_run_s3_token_file_with_two_lines_is_refused(tmp_path):
    tok = token_file(tmp_path, f"{TOKEN}\nAWS_ACCESS_KEY_ID=injected\n")
    from trainkit.errors import TrainkitError
    from trainkit.tokens import read_token_file

    with pytest.raises(TrainkitError, match="holds 2 lines") as err:
        read_token_file(tok)
    assert_no_secret(TOKEN, [str(err.value)])


def run_s3_credentials(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """The runtime's script run by path, as mount-s3.sh runs it."""
    script = Path(s3_credentials.__file__)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_", "OID_"))}
    base["AWS_SHARED_CREDENTIALS_FILE"] = str(tmp_path / "credentials")
    return subprocess.run(
        [sys.executable, str(script)], env={**base, **env}, capture_output=True, text=True,
        timeout=60, check=False, cwd=tmp_path,
    )  # fmt: skip


def test_sts_error_body_echoing_the_token_is_redacted(tmp_path):
    with echo_server("xml") as server:
        host = f"http://127.0.0.1:{server.server_address[1]}"
        proc = run_s3_credentials(tmp_path, {"S3_HOST": host, "OID_ACCESS_TOKEN": TOKEN})
        assert server.requests == 1
    line = assert_one_line_error(proc.returncode, proc.stderr, "InvalidIdentityToken")
    assert len(line) < 700
    assert_no_secret(TOKEN, [proc.stdout, proc.stderr])
    assert not (tmp_path / "credentials").exists()


def test_sts_token_with_two_lines_is_refused_without_echo(tmp_path):
    proc = run_s3_credentials(
        tmp_path, {"S3_HOST": "http://127.0.0.1:9", "OID_ACCESS_TOKEN": f"{TOKEN}\n{TOKEN}"}
    )
    assert_one_line_error(proc.returncode, proc.stderr, "holds 2 lines")
    assert_no_secret(TOKEN, [proc.stdout, proc.stderr])


def test_sts_host_user_info_is_masked(tmp_path):
    proc = run_s3_credentials(
        tmp_path, {"S3_HOST": "http://bob:hunter2-secret@127.0.0.1:9", "OID_ACCESS_TOKEN": TOKEN}
    )
    line = assert_one_line_error(proc.returncode, proc.stderr, "http://***@127.0.0.1:9")
    assert "hunter2-secret" not in proc.stderr and "bob" not in line


def test_describe_sts_error_redacts_before_truncating():
    """The old order (cut to 500, then replace) left the token's first characters when the cut
    fell inside it."""
    for pad in range(480, 500, 3):
        body = f"<Error><Code>X</Code><Message>{'m' * pad}{TOKEN}</Message></Error>".encode()
        text = s3_credentials.describe_sts_error(400, body, TOKEN)
        assert_no_secret(TOKEN, [text])
