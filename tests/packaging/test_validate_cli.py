"""`trainkit validate` and `python -m trainkit.validation`: output lines, --json, exit codes,
and the directory forms (template root, one architecture)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support.template_tree import (
    ARCH,
    TOP,
    valid_files,
    write_files,
    write_source_tree,
    write_zip,
)
from trainkit.cli import main


def broken_files() -> dict[str, bytes]:
    files = valid_files()
    files[f"{ARCH}/config/custom.json"] = b"{"
    return files


def test_trainkit_validate_ok_exits_zero(tmp_path, capsys):
    zip_path = write_zip(tmp_path / "t.zip", valid_files())
    assert main(["validate", str(zip_path)]) == 0
    captured = capsys.readouterr()
    assert "ERROR" not in captured.out
    assert f"OK: {zip_path}: 0 error(s)" in captured.err


def test_trainkit_validate_prints_one_line_per_finding(tmp_path, capsys):
    zip_path = write_zip(tmp_path / "t.zip", broken_files())
    assert main(["validate", str(zip_path)]) == 1
    lines = capsys.readouterr().out.splitlines()
    expected = (
        f"ERROR {TOP}/{ARCH}/config/custom.json: Invalid JSON file '{ARCH}/config/custom.json'"
    )
    assert any(line.startswith(expected) for line in lines)
    assert all(line.startswith(("ERROR ", "WARNING ")) for line in lines)


def test_json_output(tmp_path, capsys):
    zip_path = write_zip(tmp_path / "t.zip", broken_files())
    assert main(["validate", "--json", str(zip_path)]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is False and data["errors"] >= 1
    assert any(
        f["level"] == "ERROR" and f["path"] == f"{TOP}/{ARCH}/config/custom.json"
        for f in data["findings"]
    )


def test_missing_path_is_a_usage_error(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "nope.zip")]) == 2
    assert "no such file or directory" in capsys.readouterr().err


def test_python_m_validation(tmp_path):
    zip_path = write_zip(tmp_path / "t.zip", broken_files())
    proc = subprocess.run(
        [sys.executable, "-m", "trainkit.validation", str(zip_path)], capture_output=True, text=True
    )
    assert proc.returncode == 1
    assert f"ERROR {TOP}/{ARCH}/config/custom.json: Invalid JSON file" in proc.stdout
    ok = write_zip(tmp_path / "ok.zip", valid_files())
    proc = subprocess.run(
        [sys.executable, "-m", "trainkit.validation", "--json", str(ok)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout
    assert json.loads(proc.stdout)["ok"] is True


def test_validate_template_root_directory(tmp_path, capsys):
    root = tmp_path / "publish"
    write_files(root, broken_files())
    (tmp_path / "sibling.txt").write_text("ignored: only the given directory is validated")
    assert main(["validate", str(root)]) == 1
    assert f"ERROR publish/{ARCH}/config/custom.json: Invalid JSON file" in capsys.readouterr().out
    write_files(root, valid_files())
    assert main(["validate", str(root)]) == 0


def test_validate_architecture_directory(tmp_path, capsys):
    source = write_source_tree(tmp_path)
    assert main(["validate", str(source.arch)]) == 0
    (source.arch / "docker" / "setup.py").write_text("def f(:\n")
    assert main(["validate", str(source.arch)]) == 1
    out = capsys.readouterr().out
    assert f"ERROR {ARCH}/docker/setup.py: does not compile" in out


def test_validate_architecture_directory_missing_file(tmp_path, capsys):
    source = write_source_tree(tmp_path)
    (source.arch / "config" / "presets.json").unlink()
    assert main(["validate", str(source.arch)]) == 1
    assert f"ERROR {ARCH}/config/presets.json: Entry 'config/presets.json' not found" in (
        capsys.readouterr().out
    )


def test_directory_symlink_is_an_error(tmp_path, capsys):
    root = tmp_path / "publish"
    write_files(root, valid_files())
    (root / ARCH / "docker" / "link.py").symlink_to(root / ARCH / "docker" / "train.py")
    assert main(["validate", str(root)]) == 1
    assert f"ERROR publish/{ARCH}/docker/link.py: symlink" in capsys.readouterr().out


def test_architecture_directory_gets_the_platform_lookup_checks(tmp_path, capsys):
    source = write_source_tree(tmp_path)
    (source.arch / "docker" / "config.py").write_text("X = 1\n")
    assert main(["validate", str(source.arch)]) == 0
    assert f"WARNING {ARCH}/docker/config.py: the platform may take" in capsys.readouterr().out
