"""The local HTTP server behind `trainkit form`.

It serves three fixed resources (the page, its bundle, the two forms' schemas and initial
values) and accepts one POST (the values to save). Request paths are matched against that
fixed table and never mapped to files. It listens on 127.0.0.1 only, answers only requests
whose Host header names that loopback address and port (a DNS-rebinding page cannot reach it),
refuses cross-origin POSTs and bodies over `MAX_BODY_BYTES`, and validates the values with
Draft 7 before anything is written.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any

from trainkit import workspace
from trainkit.errors import TrainkitError
from trainkit.form import files, initial
from trainkit.schema_refs import closed_validator
from trainkit_runtime import bounded_json

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
MAX_BODY_BYTES = 1 << 20
TRAIN_FILENAME = "train_config.json"
EXPORT_FILENAME = "export_config.json"
STATIC_FILES = {"/": ("index.html", "text/html"), "/form.js": ("form.js", "text/javascript")}
# ajv 6 (rjsf 4's validator) compiles schemas with `new Function`: 'unsafe-eval' is needed.
CSP = (
    "default-src 'none'; script-src 'self' 'unsafe-eval'; connect-src 'self'; "
    "img-src 'self' data:; style-src 'self' 'unsafe-inline'; font-src 'self' data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


class BundleMissing(TrainkitError):
    """The built page (trainkit/form/static/form.js) is not in this installation."""


@dataclass(frozen=True)
class FormPage:
    """What one `trainkit form` session shows and where it saves."""

    title: str
    train_schema: dict[str, Any]
    train_values: Any
    export_schema: dict[str, Any]
    export_values: Any
    out_dir: Path

    def api_forms(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "subtitle": "the platform's form (rjsf 4, material-ui theme, liveValidate, "
            "liveOmit, omitExtraData), starting from the platform's initial values",
            "train": {"schema": self.train_schema, "values": self.train_values},
            "export": {"schema": self.export_schema, "values": self.export_values},
            "files": [TRAIN_FILENAME, EXPORT_FILENAME],
            "out": str(self.out_dir),
        }


def page_for(arch_dir: Path, out_dir: Path) -> FormPage:
    """The forms of an architecture directory, with the platform's initial values."""
    provider, category, architecture = workspace.architecture_parts(arch_dir)
    train_schema = workspace.load_schema(arch_dir)
    export_schema = initial.export_schema()
    return FormPage(
        title=f"{provider} / {category} / {architecture}",
        train_schema=train_schema,
        train_values=initial.initial_values(train_schema),
        export_schema=export_schema,
        export_values=initial.initial_values(export_schema),
        out_dir=out_dir,
    )


def load_static() -> dict[str, bytes]:
    """The page's files, read once from the installed package."""
    static = resources.files("trainkit.form") / "static"
    loaded = {}
    for name, _ in STATIC_FILES.values():
        resource = static / name
        if not resource.is_file():
            raise BundleMissing(
                f"{name} is missing from trainkit/form/static (build it: scripts/build-form, "
                "or reinstall trainkit)"
            )
        loaded[name] = resource.read_bytes()
    return loaded


def validation_errors(schema: dict[str, Any], values: Any) -> list[str]:
    """Draft 7 errors of `values`, one line each, e.g. `epochs: 0 is less than the minimum`."""
    validator = closed_validator(schema)
    out = []
    for error in sorted(validator.iter_errors(values), key=lambda e: list(map(str, e.path))):
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        out.append(f"{where}: {error.message}")
    return out


class SaveRejected(TrainkitError):
    """The posted values cannot be saved; the message says why (shown on the page)."""

    def __init__(self, message: str, status: HTTPStatus = HTTPStatus.UNPROCESSABLE_ENTITY):
        super().__init__(message)
        self.status = status


def save(page: FormPage, body: Any) -> list[str]:
    """Validate {"train": {...}, "export": {...}|null} and write both files; their names."""
    if not isinstance(body, dict) or set(body) - {"train", "export"} or "train" not in body:
        raise SaveRejected('expected a JSON object {"train": {...}, "export": {...} or null}')
    train, export = body["train"], body.get("export")
    if not isinstance(train, dict):
        raise SaveRejected("train: must be a JSON object of form values")
    if export is None:
        export = {}  # the platform writes {} when the export form is switched off
    elif not isinstance(export, dict):
        raise SaveRejected("export: must be a JSON object of form values or null")
    problems = [f"{TRAIN_FILENAME}: {e}" for e in validation_errors(page.train_schema, train)]
    if export:
        problems += [
            f"{EXPORT_FILENAME}: {e}" for e in validation_errors(page.export_schema, export)
        ]
    if problems:
        raise SaveRejected("; ".join(problems))
    targets = {page.out_dir / TRAIN_FILENAME: train, page.out_dir / EXPORT_FILENAME: export}
    try:
        for path in targets:
            files.check_target(path)
        for path, data in targets.items():
            files.write_json_atomic(path, data)
    except files.UnsafeTarget as exc:
        raise SaveRejected(str(exc), HTTPStatus.CONFLICT) from None
    except OSError as exc:
        raise SaveRejected(f"cannot write: {exc}", HTTPStatus.INTERNAL_SERVER_ERROR) from None
    names = [path.name for path in targets]
    log.info("saved %s in %s", " and ".join(names), page.out_dir)
    return names


@dataclass
class FormServer:
    """A running server; `url` is what the user opens."""

    page: FormPage
    port: int = 0
    static: dict[str, bytes] = field(default_factory=load_static)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        try:
            self.httpd = ThreadingHTTPServer((HOST, self.port), _handler_for(self))
        except OSError as exc:
            raise TrainkitError(
                f"cannot listen on {HOST}:{self.port}: {exc.strerror or exc} (try --port 0 "
                "for any free port)"
            ) from None
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.allowed_hosts = {f"{HOST}:{self.port}", f"localhost:{self.port}"}
        self.allowed_origins = {f"http://{host}" for host in self.allowed_hosts}

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/"

    def serve_forever(self) -> None:
        self.httpd.serve_forever(poll_interval=0.2)

    def start_in_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="trainkit-form", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _handler_for(server: FormServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "trainkit-form"
        sys_version = ""
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s %s", self.address_string(), format % args)

        def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", f"{content_type}; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Content-Security-Policy", CSP)
            self.send_header("Referrer-Policy", "no-referrer")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, status: HTTPStatus, data: Any) -> None:
            self._send(status, json.dumps(data).encode("utf-8"), "application/json")

        def _host_ok(self) -> bool:
            if self.headers.get("Host", "") in server.allowed_hosts:
                return True
            self.close_connection = True
            self._json(HTTPStatus.MISDIRECTED_REQUEST, {"error": "unexpected Host header"})
            return False

        def _route(self) -> str:
            return self.path.split("?", 1)[0].split("#", 1)[0]

        def do_GET(self) -> None:
            if not self._host_ok():
                return
            route = self._route()
            if route in ("/", "/index.html"):
                route = "/"
            if route in STATIC_FILES:
                name, content_type = STATIC_FILES[route]
                self._send(HTTPStatus.OK, server.static[name], content_type)
            elif route == "/favicon.ico":
                self._send(HTTPStatus.NO_CONTENT, b"", "image/x-icon")
            elif route == "/api/forms":
                self._json(HTTPStatus.OK, server.page.api_forms())
            else:
                self._json(HTTPStatus.NOT_FOUND, {"error": "not found"})

        do_HEAD = do_GET

        def do_POST(self) -> None:
            if not self._host_ok():
                return
            if self._route() != "/api/save":
                self.close_connection = True
                self._json(HTTPStatus.NOT_FOUND, {"error": "not found"})
                return
            origin = self.headers.get("Origin")
            if origin is not None and origin not in server.allowed_origins:
                self.close_connection = True
                self._json(HTTPStatus.FORBIDDEN, {"error": "cross-origin request refused"})
                return
            content_type = self.headers.get("Content-Type", "").split(";", 1)[0].strip()
            if content_type != "application/json":
                self.close_connection = True
                self._json(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, {"error": "send application/json"})
                return
            try:
                length = int(self.headers.get("Content-Length", ""))
            except ValueError:
                self.close_connection = True
                self._json(HTTPStatus.LENGTH_REQUIRED, {"error": "Content-Length required"})
                return
            if length < 0 or length > MAX_BODY_BYTES:
                self.close_connection = True
                self._json(
                    HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                    {"error": f"body over {MAX_BODY_BYTES} bytes"},
                )
                return
            raw = self.rfile.read(length)
            try:
                body = bounded_json.loads(raw, "body", strict=False)
            except ValueError as exc:
                self._json(HTTPStatus.BAD_REQUEST, {"error": f"not JSON: {exc}"})
                return
            try:
                with server.lock:
                    written = save(server.page, body)
            except SaveRejected as exc:
                self._json(exc.status, {"error": str(exc)})
                return
            self._json(HTTPStatus.OK, {"written": written, "out": str(server.page.out_dir)})

    return Handler
