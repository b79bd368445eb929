"""trainkit_runtime/s3_credentials.py: the STS exchange against moto and against small local servers
that answer like MinIO does when it refuses, plus the credentials file handling."""

from __future__ import annotations

import contextlib
import datetime
import http.server
import os
import ssl
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.s3.conftest import ROLE_ARN, RUNTIME, base_env
from tests.support.services import MotoServer, free_port
from trainkit_runtime import s3_credentials as sc

HELPER = RUNTIME / "s3_credentials.py"
TOKEN = "oidc-token-must-stay-secret"


def run_helper(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(HELPER), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {**base_env(tmp_path), "OID_ACCESS_TOKEN": TOKEN}


# --------------------------------------------------------------------------- fake STS servers


class _Handler(http.server.BaseHTTPRequestHandler):
    status = 200
    body = b""
    headers_out: dict[str, str] = {}  # noqa: RUF012
    seen: list[tuple[str, bytes]]

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        self.seen.append((self.path, self.rfile.read(length)))
        self._answer()

    def do_GET(self) -> None:
        self.seen.append((self.path, b""))
        self._answer()

    def _answer(self) -> None:
        self.send_response(self.status)
        for key, value in self.headers_out.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args) -> None:
        pass


@contextlib.contextmanager
def fake_server(
    status: int,
    body: bytes,
    headers: dict[str, str] | None = None,
    tls: ssl.SSLContext | None = None,
) -> Iterator[tuple[str, list[tuple[str, bytes]]]]:
    seen: list[tuple[str, bytes]] = []
    handler = type(
        "Handler",
        (_Handler,),
        {"status": status, "body": body, "headers_out": headers or {}, "seen": seen},
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    scheme = "https" if tls else "http"
    try:
        yield f"{scheme}://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def self_signed_context(tmp_path: Path) -> ssl.SSLContext:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context


def sts_success_body(access_key: str = "ASIAEXAMPLE") -> bytes:
    return (
        '<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
        "<AssumeRoleWithWebIdentityResult><Credentials>"
        f"<AccessKeyId>{access_key}</AccessKeyId><SecretAccessKey>sec/ret+key=</SecretAccessKey>"
        "<SessionToken>session.token-value</SessionToken>"
        "<Expiration>2030-01-01T00:00:00Z</Expiration>"
        "</Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>"
    ).encode()


# --------------------------------------------------------------------------- against moto


def test_exchange_against_moto_writes_profile_600(moto: MotoServer, env: dict[str, str]):
    env.update(S3_HOST=moto.url, S3_ROLE_ARN=ROLE_ARN)
    result = run_helper(env)
    assert result.returncode == 0, result.stderr
    assert "S3 access expires on 20" in result.stdout
    path = Path(env["AWS_SHARED_CREDENTIALS_FILE"])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    credentials = sc.read_profile(path)
    assert credentials.access_key_id.startswith("ASIA")
    assert credentials.session_token
    assert TOKEN not in path.read_text()
    assert TOKEN not in result.stdout + result.stderr
    sts_posts = [line for line in moto.requests_seen() if '"POST / ' in line]
    assert len(sts_posts) == 1


def test_moto_rejecting_the_request_is_one_clear_line_and_no_file(
    moto: MotoServer, env: dict[str, str]
):
    # Without RoleArn moto's STS fails (HTTP 500): the error names the status, nothing written.
    env.update(S3_HOST=moto.url)
    result = run_helper(env)
    assert result.returncode == 3
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "AssumeRoleWithWebIdentity" in lines[0]
    assert "HTTP 500" in lines[0]
    assert TOKEN not in result.stdout + result.stderr
    assert not Path(env["AWS_SHARED_CREDENTIALS_FILE"]).exists()


def test_unreachable_host_is_a_clear_error(env: dict[str, str]):
    env.update(S3_HOST=f"http://127.0.0.1:{free_port()}", S3_STS_TIMEOUT="5")
    result = run_helper(env)
    assert result.returncode == 3
    assert "cannot connect" in result.stderr
    assert "Connection refused" in result.stderr
    assert not Path(env["AWS_SHARED_CREDENTIALS_FILE"]).exists()


def test_missing_token_and_host_are_named(env: dict[str, str]):
    env.pop("OID_ACCESS_TOKEN")
    env["S3_HOST"] = "http://127.0.0.1:9"
    result = run_helper(env)
    assert result.returncode == 2
    assert "OID_ACCESS_TOKEN is not set" in result.stderr
    env.pop("S3_HOST")
    env["OID_ACCESS_TOKEN"] = TOKEN
    result = run_helper(env)
    assert result.returncode == 2
    assert "S3_HOST is not set" in result.stderr


# --------------------------------------------------------------------------- MinIO-like answers


def test_sts_error_response_shows_code_and_message_but_never_the_token(env: dict[str, str]):
    body = (
        '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error>'
        "<Type>Sender</Type><Code>InvalidIdentityToken</Code>"
        f"<Message>Token {TOKEN} has expired</Message></Error></ErrorResponse>"
    ).encode()
    with fake_server(400, body) as (url, seen):
        env["S3_HOST"] = url
        result = run_helper(env)
    assert result.returncode == 3
    assert "HTTP 400, InvalidIdentityToken: Token <redacted> has expired" in result.stderr
    assert TOKEN not in result.stdout + result.stderr
    assert not Path(env["AWS_SHARED_CREDENTIALS_FILE"]).exists()
    # The token went in the POST body; RoleArn only when configured (MinIO rejects a wrong one).
    form = seen[0][1].decode()
    assert "WebIdentityToken=" in form
    assert "RoleArn" not in form
    assert "DurationSeconds=604800" in form


def test_role_arn_and_duration_are_sent_when_configured(env: dict[str, str]):
    with fake_server(200, sts_success_body()) as (url, seen):
        env.update(S3_HOST=url, S3_ROLE_ARN=ROLE_ARN, S3_STS_DURATION_SECONDS="3600")
        result = run_helper(env)
    assert result.returncode == 0, result.stderr
    form = seen[0][1].decode()
    assert "RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fdataset-reader" in form
    assert "DurationSeconds=3600" in form
    assert "S3 access expires on 2030-01-01T00:00:00Z." in result.stdout


def test_redirects_are_not_followed(env: dict[str, str]):
    with (
        fake_server(200, sts_success_body()) as (elsewhere, seen_elsewhere),
        fake_server(307, b"", {"Location": elsewhere + "/"}) as (url, _),
    ):
        env["S3_HOST"] = url
        result = run_helper(env)
    assert result.returncode == 3
    assert "HTTP 307" in result.stderr
    assert seen_elsewhere == []


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"not xml at all", "not a plain XML document"),
        (
            b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">]><a>&lol;</a>',
            "not a plain XML document",
        ),
        (b"<AssumeRoleWithWebIdentityResponse/>", "has no <Credentials>"),
        (
            b"<r><Credentials><AccessKeyId>A</AccessKeyId><SecretAccessKey>S</SecretAccessKey>"
            b"</Credentials></r>",
            "lacks <SessionToken>",
        ),
        (
            b"<r><Credentials><AccessKeyId>A\n[default]</AccessKeyId><SecretAccessKey>S"
            b"</SecretAccessKey><SessionToken>T</SessionToken></Credentials></r>",
            "malformed <AccessKeyId>",
        ),
    ],
)
def test_bad_sts_answers_are_refused(env: dict[str, str], body: bytes, expected: str):
    with fake_server(200, body) as (url, _):
        env["S3_HOST"] = url
        result = run_helper(env)
    assert result.returncode == 4
    assert expected in result.stderr
    assert not Path(env["AWS_SHARED_CREDENTIALS_FILE"]).exists()


def test_tls_is_verified_unless_s3_insecure(env: dict[str, str], tmp_path: Path):
    with fake_server(200, sts_success_body(), tls=self_signed_context(tmp_path)) as (url, _):
        env["S3_HOST"] = url
        refused = run_helper(env)
        env["S3_INSECURE"] = "1"
        accepted = run_helper(env)
    assert refused.returncode == 3
    assert "CERTIFICATE_VERIFY_FAILED" in refused.stderr
    assert accepted.returncode == 0, accepted.stderr
    assert "TLS certificates of S3_HOST are NOT verified" in accepted.stderr


# --------------------------------------------------------------------------- credentials file


def test_write_profile_replaces_only_dataset_and_fixes_mode(tmp_path: Path):
    path = tmp_path / "aws" / "credentials"
    path.parent.mkdir()
    path.write_text(
        "# my keys\n[default]\naws_access_key_id = DEFAULTKEY\naws_secret_access_key = d\n\n"
        "[dataset]\naws_access_key_id = OLD\naws_secret_access_key = old\n"
        "aws_session_token = oldtoken\nregion = eu\n\n"
        "[other]\naws_access_key_id = OTHERKEY\naws_secret_access_key = o\n"
    )
    path.chmod(0o644)
    credentials = sc.Credentials("NEWKEY", "new/secret", "newtoken", "2030")
    sc.write_profile(path, credentials)
    text = path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "# my keys\n[default]\naws_access_key_id = DEFAULTKEY" in text
    assert "[other]\naws_access_key_id = OTHERKEY" in text
    assert "OLD" not in text
    assert "region = eu" not in text
    assert text.count("[dataset]") == 1
    assert sc.read_profile(path) == sc.Credentials("NEWKEY", "new/secret", "newtoken")
    assert sc.read_profile(path, "other").access_key_id == "OTHERKEY"
    assert [p.name for p in path.parent.iterdir()] == ["credentials"]  # no temp file left


def test_write_profile_creates_private_file_under_a_permissive_umask(tmp_path: Path):
    path = tmp_path / "new" / "credentials"
    old = os.umask(0)
    try:
        sc.write_profile(path, sc.Credentials("K", "S", "T"))
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_credentials_repr_hides_secrets():
    text = repr(sc.Credentials("AKID", "SECRET", "SESSION", "2030"))
    assert "AKID" in text
    assert "SECRET" not in text
    assert "SESSION" not in text


def test_exec_passes_keys_in_env_and_drops_the_oidc_token(env: dict[str, str]):
    sc_path = Path(env["AWS_SHARED_CREDENTIALS_FILE"])
    sc.write_profile(sc_path, sc.Credentials("AKID", "SECRET", "SESSION"))
    probe = (
        "import os, json; print(json.dumps({k: os.environ.get(k) for k in "
        "['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'OID_ACCESS_TOKEN']}))"
    )
    result = run_helper(env, "exec", "--", sys.executable, "-c", probe)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        '{"AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "SECRET", '
        '"AWS_SESSION_TOKEN": "SESSION", "OID_ACCESS_TOKEN": null}'
    )


def test_exec_without_profile_is_a_clear_error(env: dict[str, str]):
    result = run_helper(env, "exec", "--", "true")
    assert result.returncode == 5
    assert "cannot read credentials file" in result.stderr
