"""The wheel, installed outside the checkout, used as a researcher would: from an empty directory
`trainkit new → dataset → run (a few steps) → package → validate` with the installed `trainkit`
command, and the checkout is left untouched.

How the fresh environment is made (honest, and seconds instead of minutes): a new venv without
pip in which ONLY the wheel is installed (`pip --python NEW install --no-deps`). Its
dependencies (torch, Lightning, ...) come from the test environment's site-packages through a
`.pth` line: a directory added that way is a plain sys.path entry, so the `.pth` files in it are
not processed and the test environment's editable trainkit (a `.pth` + finder) is invisible.
The test asserts that `trainkit` and `trainkit_runtime` are imported from the new venv, not from
the checkout. Downloading and installing the training stack again would take minutes and the
network; the wheel's own content is what is under test."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.support.repo import REPO_ROOT

pytestmark = pytest.mark.slow

FORM_BUNDLE = Path("trainkit/form/static/form.js")


def checkout_state() -> tuple[str, dict[str, tuple[int, int]]]:
    """git status plus size/mtime of every file in the parts a command could write into."""
    status = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all", "--ignored"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    files = {}
    for part in ("templates", "trainkit", "trainkit_runtime", "out", "dev"):
        for path in sorted((REPO_ROOT / part).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                st = path.stat()
                files[str(path.relative_to(REPO_ROOT))] = (st.st_size, st.st_mtime_ns)
    relevant = "\n".join(
        line
        for line in status.splitlines()
        if "__pycache__" not in line and ".pytest_cache" not in line
    )
    return relevant, files


def build_wheel(tmp_path: Path) -> Path:
    """pip wheel from a copy of the tracked files (+ the built form bundle), so the build's
    build/ and *.egg-info never land in the checkout."""
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True
    ).stdout.decode()
    tree = tmp_path / "tree"
    for name in [*filter(None, tracked.split("\0")), str(FORM_BUNDLE)]:
        source = REPO_ROOT / name
        if source.is_file():
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, tree / name)
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
    subprocess.run([*pip_wheel, "-w", str(tmp_path / "dist"), str(tree)], check=True, timeout=600)
    (wheel,) = (tmp_path / "dist").glob("trainkit-*.whl")
    return wheel


def fresh_venv(tmp_path: Path, wheel: Path) -> Path:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(site) / "test-environment-deps.pth").write_text("\n".join(sorted(deps)) + "\n")
    install = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q"]
    subprocess.run([*install, "--no-deps", "--ignore-installed", str(wheel)], check=True)
    return venv


def test_installed_wheel_from_an_empty_directory(tmp_path):
    before = checkout_state()
    wheel = build_wheel(tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    assert (
        "trainkit_runtime/lifecycle.py" in names and "trainkit/template/cookiecutter.json" in names
    )
    venv = fresh_venv(tmp_path, wheel)
    work = tmp_path / "work"
    work.mkdir()
    env = {
        k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")
    }
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}/usr/bin{os.pathsep}/bin"

    def trainkit(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            ["trainkit", *args], cwd=work, env=env, capture_output=True, text=True, timeout=timeout
        )
        assert proc.returncode == 0, (args, proc.stdout[-3000:], proc.stderr[-3000:])
        return proc

    where = subprocess.run(
        [
            "python",
            "-c",
            "import trainkit, trainkit_runtime; print(trainkit.__file__); "
            "print(trainkit_runtime.__file__)",
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert all(path.startswith(str(venv)) for path in where), where

    trainkit("new", "--no-input")
    arch = work / "templates" / "Acme" / "Classification" / "TinyNet"
    assert (arch / "docker" / "train.py").is_file()
    trainkit("dataset", "--out", "minio", "--id", "1", "--images", "24", "--task", "classification")
    settings = ["epochs=1", "max-steps=2", "workers=0", "image-size=32", "batch-size=4"]
    run = trainkit(
        "run",
        str(arch.relative_to(work)),
        "--minio",
        "minio",
        "--dataset-id",
        "1",
        *[item for setting in settings for item in ("--set", setting)],
    )
    assert "Accuracy: " in run.stdout
    output = work / "out" / "Acme" / "Classification" / "TinyNet" / "output"
    assert (output / "model.onnx").is_file()
    trainkit("package", "Acme", "Classification", "TinyNet", "--out", "tinynet.zip")
    validate = trainkit("validate", "tinynet.zip")
    assert "ERROR" not in validate.stdout
    assert "unmodified" in validate.stdout  # the runtime the installed wheel vendored
    assert checkout_state() == before
