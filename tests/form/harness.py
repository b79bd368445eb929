"""Headless Chromium (Debian's /usr/bin/chromium, driven by playwright from PyPI) and helpers
to drive the page `trainkit form` serves."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.repo import EXAMPLES_DIR
from trainkit.form import server

CHROMIUM = os.environ.get("TRAINKIT_CHROMIUM", "/usr/bin/chromium")
# As root on a closed network: no sandbox, no GPU, and none of Chromium's own connections.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
READY = "window.trainkitForm && window.trainkitForm.ready"


def chromium_missing() -> str | None:
    """Why a headless Chromium cannot be driven here, or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e .[dev])"
    if shutil.which(CHROMIUM) is None:
        return f"{CHROMIUM} not found (Debian package chromium; scripts/bootstrap installs it)"
    return None


@contextlib.contextmanager
def launch_chromium() -> Iterator[Any]:
    """A playwright Browser on Debian's Chromium (playwright gives it a fresh profile dir)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, timeout=60_000
        )
        try:
            yield browser
        finally:
            browser.close()


def write_arch(root: Path, schema: dict[str, Any], name: str = "Probe") -> Path:
    """A minimal architecture directory (config/ + docker/) holding `schema`."""
    arch = root / "Test" / "Forms" / name
    (arch / "config").mkdir(parents=True)
    (arch / "docker").mkdir()
    (arch / "config" / "config.jsonschema").write_text(json.dumps(schema), encoding="utf-8")
    return arch


@dataclass
class OpenForm:
    """The page of a running `trainkit form` server in one browser tab."""

    page: Any
    server: server.FormServer
    errors: list[str]

    @property
    def out(self) -> Path:
        return self.server.page.out_dir

    def rjsf_state(self) -> dict[str, Any]:
        """The formData rjsf itself holds for both forms (not the page's copy)."""
        return self.page.evaluate("window.trainkitForm.rjsfState()")

    def save(self) -> dict[str, Any]:
        """Click Save and wait for the outcome (`ok` false: rjsf or the server refused)."""
        self.page.evaluate("window.trainkitForm.lastSave = null")
        self.page.click("#save")
        self.page.wait_for_function("window.trainkitForm.lastSave !== null", timeout=10_000)
        return self.page.evaluate("window.trainkitForm.lastSave")

    def saved(self, name: str = server.TRAIN_FILENAME) -> Any:
        return json.loads((self.out / name).read_text(encoding="utf-8"))


@contextlib.contextmanager
def open_form(browser: Any, arch: Path, out: Path) -> Iterator[OpenForm]:
    """Serve `arch` on a free loopback port and open it in a new tab, rendered."""
    form_server = server.FormServer(server.page_for(arch, out), port=0)
    form_server.start_in_thread()
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(form_server.url)
        page.wait_for_function(READY, timeout=30_000)
        yield OpenForm(page=page, server=form_server, errors=errors)
    finally:
        page.close()
        form_server.stop()


def png_is_blank(path: Path) -> bool:
    """True unless `path` is a PNG with more than one colour (decoded with Pillow)."""
    from PIL import Image

    with Image.open(path) as image:
        image.load()
        if image.format != "PNG":
            return True
        colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
        return colours is not None and len(colours) <= 1


def png_header_ok(data: bytes) -> bool:
    """PNG signature followed by a valid IHDR chunk."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return False
    length, kind = struct.unpack(">I4s", data[8:16])
    crc = struct.unpack(">I", data[16 + length : 20 + length])[0]
    return kind == b"IHDR" and zlib.crc32(data[12 : 16 + length]) == crc


def readme_screenshot(target: Path, example: str = "Acme/Classification/TinyNet") -> None:
    """The README's picture of the form: `python -m tests.form.harness docs/form.png`."""
    import tempfile

    with (
        tempfile.TemporaryDirectory() as out,
        launch_chromium() as browser,
        open_form(browser, EXAMPLES_DIR / example, Path(out)) as form,
    ):
        form.page.fill("#root_epochs", "0")  # show rjsf's live validation message too
        form.page.wait_for_timeout(300)
        form.page.screenshot(path=str(target), clip={"x": 0, "y": 0, "width": 1280, "height": 1150})


if __name__ == "__main__":
    import sys

    readme_screenshot(Path(sys.argv[1]))
