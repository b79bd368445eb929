"""A stand-in for the platform's upload endpoint (POST /api/train/template/upload), on a free
loopback port: checks the bearer token and the multipart field `template_zip`, answers like the
platform (201 JSON, or 4xx/5xx {"detail": ...}) and records what it received."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from email import policy
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.support.serving import serving

TOKEN = "s3cr3t-t0ken-value"


class PlatformHandler(BaseHTTPRequestHandler):
    server: PlatformServer

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def _answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        record = {"path": self.path, "authorization": self.headers.get("Authorization")}
        self.server.requests.append(record)
        if self.path != "/api/train/template/upload":
            return self._answer(404, {"detail": "Not Found"})
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self._answer(401, {"detail": "Not authenticated"})
        message = BytesParser(policy=policy.default).parsebytes(
            f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode() + body
        )
        fields = {
            part.get_param("name", header="content-disposition"): part.get_payload(decode=True)
            for part in message.iter_parts()
        }
        record["fields"] = sorted(fields)
        data = fields.get("template_zip")
        if data is None or not zipfile.is_zipfile(io.BytesIO(data)):
            return self._answer(422, {"detail": "field 'template_zip' missing or not a ZIP"})
        record["zip_names"] = zipfile.ZipFile(io.BytesIO(data)).namelist()
        if self.server.mode == "reject":
            return self._answer(400, {"detail": "Validation error: Entry 'config.py' not found."})
        if self.server.mode == "boom":
            return self._answer(500, {"detail": "Internal Server Error"})
        self._answer(
            201,
            {"provider": "Acme", "architecture": {"category": "Classification", "name": "TinyNet"}},
        )


class PlatformServer(ThreadingHTTPServer):
    mode = "ok"

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), PlatformHandler)
        self.requests: list[dict] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/api"


@contextmanager
def platform_server() -> Iterator[PlatformServer]:
    with serving(PlatformServer()) as server:
        yield server
