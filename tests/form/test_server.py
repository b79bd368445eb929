"""The `trainkit form` server without a browser: loopback only, Host/Origin checks, a body
limit, Draft 7 validation before anything is written, atomic writes that never go through a
symlink or replace a non-regular file, and no request path ever mapped to a file."""

from __future__ import annotations

import http.client
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.repo import EXAMPLES_DIR
from trainkit.form import server

ARCH = EXAMPLES_DIR / "Acme" / "Classification" / "TinyNet"


@pytest.fixture
def running(tmp_path: Path) -> Iterator[server.FormServer]:
    form_server = server.FormServer(server.page_for(ARCH, tmp_path), port=0)
    form_server.start_in_thread()
    try:
        yield form_server
    finally:
        form_server.stop()


def request(
    srv: server.FormServer,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        merged = {"Host": f"127.0.0.1:{srv.port}", **(headers or {})}
        if body is not None:
            merged.setdefault("Content-Length", str(len(body)))
        for key, value in merged.items():
            conn.putheader(key, value)
        conn.endheaders(body)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def post_save(srv: server.FormServer, data: object, **headers: str) -> tuple[int, dict]:
    body = json.dumps(data).encode()
    status, raw = request(
        srv, "POST", "/api/save", body, {"Content-Type": "application/json", **headers}
    )
    return status, json.loads(raw)


def values(srv: server.FormServer) -> dict:
    return dict(srv.page.train_values)


def test_listens_on_loopback_only(running: server.FormServer) -> None:
    assert running.httpd.server_address[0] == "127.0.0.1"
    assert running.url == f"http://127.0.0.1:{running.port}/"


def test_serves_page_bundle_and_forms(running: server.FormServer) -> None:
    status, page = request(running, "GET", "/")
    assert status == 200 and b'<script src="form.js">' in page
    status, bundle = request(running, "GET", "/form.js")
    assert status == 200 and len(bundle) > 100_000
    status, raw = request(running, "GET", "/api/forms")
    forms = json.loads(raw)
    assert status == 200
    assert forms["train"]["values"]["epochs"] == 10
    assert forms["export"]["values"]["model_type"] == "pytorch"
    assert forms["export"]["schema"]["properties"]["model_type"]["enum"][0] == "pytorch"


@pytest.mark.parametrize("host", ["evil.example:80", "127.0.0.1:1", "", "127.0.0.1"])
def test_foreign_host_header_refused(running: server.FormServer, host: str) -> None:
    status, _ = request(running, "GET", "/api/forms", headers={"Host": host})
    assert status == 421
    status, _ = post_save(running, {"train": values(running)}, Host=host)
    assert status == 421
    assert not (running.page.out_dir / "train_config.json").exists()


def test_localhost_name_accepted(running: server.FormServer) -> None:
    status, _ = request(running, "GET", "/", headers={"Host": f"localhost:{running.port}"})
    assert status == 200


@pytest.mark.parametrize(
    "path", ["/../../etc/passwd", "/static/form.js", "/index.html/..", "/api/save/../x", "//x"]
)
def test_no_path_is_mapped_to_a_file(running: server.FormServer, path: str) -> None:
    status, _ = request(running, "GET", path)
    assert status == 404


def test_cross_origin_post_refused(running: server.FormServer) -> None:
    status, answer = post_save(running, {"train": values(running)}, Origin="http://evil.example")
    assert status == 403, answer
    assert not (running.page.out_dir / "train_config.json").exists()


def test_body_limit(running: server.FormServer) -> None:
    """Refused from Content-Length alone, before any of the body is read: the test sends only
    the headers (sending the body too would race the server closing the connection)."""
    headers = (
        f"POST /api/save HTTP/1.1\r\nHost: 127.0.0.1:{running.port}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {server.MAX_BODY_BYTES + 1}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", running.port), timeout=10) as sock:
        sock.sendall(headers.encode())
        status_line = sock.makefile("rb").readline()
    assert status_line.split()[1] == b"413", status_line
    assert not (running.page.out_dir / "train_config.json").exists()


def test_non_json_content_type_refused(running: server.FormServer) -> None:
    body = json.dumps({"train": values(running)}).encode()
    status, _ = request(running, "POST", "/api/save", body, {"Content-Type": "text/plain"})
    assert status == 415


def test_invalid_values_are_not_written(running: server.FormServer) -> None:
    status, answer = post_save(running, {"train": {**values(running), "epochs": 0}})
    assert status == 422
    assert "epochs: 0 is less than the minimum of 1" in answer["error"]
    bad_export = {**running.page.export_values, "opset_version": 99}
    status, answer = post_save(running, {"train": values(running), "export": bad_export})
    assert status == 422 and "opset_version" in answer["error"]
    assert sorted(os.listdir(running.page.out_dir)) == []


def test_valid_values_written_atomically(running: server.FormServer) -> None:
    train = {**values(running), "epochs": 2}
    status, answer = post_save(running, {"train": train, "export": running.page.export_values})
    assert status == 200, answer
    assert answer["written"] == ["train_config.json", "export_config.json"]
    out = running.page.out_dir
    assert json.loads((out / "train_config.json").read_text()) == train
    assert json.loads((out / "export_config.json").read_text()) == running.page.export_values
    assert sorted(os.listdir(out)) == ["export_config.json", "train_config.json"]  # no temp
    status, _ = post_save(running, {"train": {**train, "epochs": 3}, "export": None})
    assert status == 200
    assert json.loads((out / "train_config.json").read_text())["epochs"] == 3
    assert json.loads((out / "export_config.json").read_text()) == {}  # export switched off


def test_symlink_target_is_not_followed(running: server.FormServer, tmp_path: Path) -> None:
    victim = tmp_path.parent / f"{tmp_path.name}-victim.json"
    victim.write_text("keep")
    (running.page.out_dir / "export_config.json").symlink_to(victim)
    status, answer = post_save(running, {"train": values(running), "export": None})
    assert status == 409 and "symlink" in answer["error"]
    assert victim.read_text() == "keep"
    assert not (running.page.out_dir / "train_config.json").exists()  # nothing half-saved


def test_directory_target_is_not_replaced(running: server.FormServer) -> None:
    (running.page.out_dir / "train_config.json").mkdir()
    status, answer = post_save(running, {"train": values(running)})
    assert status == 409 and "not a regular file" in answer["error"]
    assert (running.page.out_dir / "train_config.json").is_dir()


@pytest.mark.parametrize(
    "body", [[], {"train": []}, {"train": {}, "export": 3}, {"train": {}, "path": "/etc/x"}]
)
def test_malformed_bodies_refused(running: server.FormServer, body: object) -> None:
    status, _ = post_save(running, body)
    assert status == 422
    assert os.listdir(running.page.out_dir) == []
