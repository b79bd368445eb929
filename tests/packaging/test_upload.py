"""`trainkit upload` against a real HTTP server on loopback that implements the platform's
endpoint: bearer token, multipart field `template_zip`, 201/400/401/500 answers."""

from __future__ import annotations

import json
import socket

import pytest

from tests.support.platform_server import TOKEN, platform_server
from tests.support.template_tree import ARCH, valid_files, write_zip
from trainkit import upload
from trainkit.cli import main


@pytest.fixture
def platform():
    with platform_server() as server:
        yield server


@pytest.fixture
def good_zip(tmp_path):
    return write_zip(tmp_path / "train-container-publish.zip", valid_files())


@pytest.fixture
def token_file(tmp_path):
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    path.chmod(0o600)
    return path


def upload_argv(zip_path, url, *extra: str) -> list[str]:
    argv = ["upload", str(zip_path), "--url", url, *extra]
    assert not any(TOKEN in a for a in argv)  # never on the command line
    return argv


def assert_token_not_shown(capsys) -> tuple[str, str]:
    out, err = capsys.readouterr()
    assert TOKEN not in out and TOKEN not in err
    return out, err


def test_upload_success_with_token_file(platform, good_zip, token_file, capsys):
    code = main(upload_argv(good_zip, platform.url, "--token-file", str(token_file)))
    out, err = assert_token_not_shown(capsys)
    assert code == 0, err
    assert json.loads(out.splitlines()[0]) == {
        "provider": "Acme",
        "architecture": {"category": "Classification", "name": "TinyNet"},
    }
    assert "uploaded: provider Acme, category Classification, architecture TinyNet" in err
    (request,) = platform.requests
    assert request["authorization"] == f"Bearer {TOKEN}"
    assert request["fields"] == ["template_zip"]
    assert f"train-container-publish/{ARCH}/config/custom.json" in request["zip_names"]


def test_upload_token_from_environment(platform, good_zip, capsys, monkeypatch):
    monkeypatch.setenv("TRAINKIT_TOKEN", TOKEN)
    assert main(upload_argv(good_zip, platform.url + "/")) == 0
    assert_token_not_shown(capsys)
    assert platform.requests[0]["authorization"] == f"Bearer {TOKEN}"


def test_rejected_upload_shows_detail(platform, good_zip, token_file, capsys):
    platform.mode = "reject"
    code = main(upload_argv(good_zip, platform.url, "--token-file", str(token_file)))
    _, err = assert_token_not_shown(capsys)
    assert code == 1
    assert "answered 400 Bad Request: Validation error: Entry 'config.py' not found." in err


def test_unauthorised(platform, good_zip, tmp_path, capsys):
    wrong = tmp_path / "wrong-token"
    wrong.write_text("not-the-token")
    wrong.chmod(0o600)
    code = main(upload_argv(good_zip, platform.url, "--token-file", str(wrong)))
    _, err = assert_token_not_shown(capsys)
    assert code == 1
    assert "answered 401 Unauthorized (check the token): Not authenticated" in err
    assert "not-the-token" not in err


def test_server_error(platform, good_zip, token_file, capsys):
    platform.mode = "boom"
    code = main(upload_argv(good_zip, platform.url, "--token-file", str(token_file)))
    _, err = assert_token_not_shown(capsys)
    assert code == 1
    assert "answered 500 Internal Server Error: Internal Server Error" in err
    assert len(platform.requests) == 1  # an answer is never retried


def test_connection_refused_retries_then_fails(good_zip, token_file, capsys, monkeypatch):
    monkeypatch.setattr(upload, "BACKOFF_SECONDS", 0.01)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    url = f"http://127.0.0.1:{port}"
    code = main(upload_argv(good_zip, url, "--token-file", str(token_file), "--retries", "2"))
    _, err = assert_token_not_shown(capsys)
    assert code == 1
    assert f"cannot reach {url}/train/template/upload after 3 attempt(s): ConnectionError" in err
    assert err.count("retrying in") == 2


def test_dry_run_sends_nothing(platform, good_zip, capsys):
    code = main(upload_argv(good_zip, platform.url, "--dry-run"))
    out, _ = assert_token_not_shown(capsys)
    assert code == 0
    assert f"would POST {good_zip}" in out and "/api/train/template/upload" in out
    assert platform.requests == []


def test_invalid_zip_is_not_uploaded_unless_forced(platform, tmp_path, token_file, capsys):
    files = valid_files()
    del files["config.py"]
    bad = write_zip(tmp_path / "bad.zip", files)
    code = main(upload_argv(bad, platform.url, "--token-file", str(token_file)))
    _, err = assert_token_not_shown(capsys)
    assert code == 1
    assert "ERROR train-container-publish/config.py: Entry 'config.py' not found" in err
    assert "not uploading (--force uploads anyway)" in err
    assert platform.requests == []
    platform.mode = "reject"
    code = main(upload_argv(bad, platform.url, "--token-file", str(token_file), "--force"))
    assert code == 1
    assert len(platform.requests) == 1


def test_no_token_is_an_error(platform, good_zip, capsys, monkeypatch):
    monkeypatch.delenv("TRAINKIT_TOKEN", raising=False)
    assert main(upload_argv(good_zip, platform.url)) == 1
    assert "no token: pass --token-file FILE or set TRAINKIT_TOKEN" in capsys.readouterr().err
    assert platform.requests == []


@pytest.mark.parametrize("option", ["--token", "--token="])
def test_token_on_the_command_line_is_refused_without_echo(good_zip, capsys, option):
    argv = ["upload", str(good_zip), "--url", "http://x"]
    argv += [option + TOKEN] if option.endswith("=") else [option, TOKEN]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert TOKEN not in err
    assert "use --token-file FILE or $TRAINKIT_TOKEN" in err


def test_bad_url_is_a_usage_error(good_zip, token_file, capsys):
    assert main(upload_argv(good_zip, "ftp://x", "--token-file", str(token_file))) == 2
    assert "must start with http:// or https://" in capsys.readouterr().err
