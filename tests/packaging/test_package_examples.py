"""package.sh on every committed example in templates/ → the validator passes, the ZIP holds
exactly the committed config/ and docker/ files plus the runtime files, two runs give the same
bytes, and the ZIP uploads to a local stand-in of the platform endpoint."""

from __future__ import annotations

import hashlib
import subprocess
import zipfile
from pathlib import Path

import pytest

from tests.support.packaging import package_sh
from tests.support.platform_server import TOKEN, platform_server
from tests.support.repo import EXAMPLES_DIR
from trainkit import layout, vendor
from trainkit.validation import validate_path

TOP = "train-container-publish"


def examples() -> list[Path]:
    return sorted(
        p
        for p in EXAMPLES_DIR.glob("*/*/*")
        if (p / layout.CONFIG_DIR).is_dir() and (p / layout.DOCKER_DIR).is_dir()
    )


def committed_files(arch: Path) -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "--", f"{layout.CONFIG_DIR}/", f"{layout.DOCKER_DIR}/"],
        cwd=arch,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line for line in out.splitlines() if line]


def expected_entries(arch: Path) -> list[str]:
    rel_arch = arch.relative_to(EXAMPLES_DIR).as_posix()
    files = [f"{TOP}/{name}" for name in layout.ROOT_FILES]
    files += [f"{TOP}/{rel_arch}/{rel}" for rel in committed_files(arch)]
    files += [f"{TOP}/{rel_arch}/docker/{rel}" for rel, _ in vendor.runtime_files()]
    dirs = {f"{Path(f).parent.as_posix()}/" for f in files}
    for d in list(dirs):
        dirs |= {f"{p.as_posix()}/" for p in Path(d).parents if p.as_posix() != "."}
    return sorted(set(files) | dirs)


IDS = [p.relative_to(EXAMPLES_DIR).as_posix() for p in examples()]


def test_every_committed_example_is_packaged_below():
    """An empty parameter list would skip the packaging tests silently."""
    assert IDS == [
        "Acme/Classification/TinyNet",
        "Acme/Detection/TinyDet",
        "Acme/Segmentation/TinySeg",
    ]


@pytest.mark.parametrize("arch", examples(), ids=IDS)
def test_package_each_example(arch, tmp_path):
    provider, category, name = arch.relative_to(EXAMPLES_DIR).parts
    digests = []
    for out in ("a.zip", "b.zip"):
        proc = package_sh(
            provider, category, name, "--out", out, "--templates", str(EXAMPLES_DIR), cwd=tmp_path
        )
        assert proc.returncode == 0, proc.stderr
        digests.append(hashlib.sha256((tmp_path / out).read_bytes()).hexdigest())
    assert digests[0] == digests[1]
    with zipfile.ZipFile(tmp_path / "a.zip") as zf:
        assert zf.namelist() == expected_entries(arch)
    report = validate_path(tmp_path / "a.zip")
    assert report.ok, "\n".join(report.lines())
    # The example's own architecture directory validates the same way.
    assert validate_path(arch).ok


@pytest.mark.parametrize("arch", examples()[:1], ids=IDS[:1])
def test_example_uploads_to_the_platform_endpoint(arch, tmp_path, monkeypatch, capsys):
    from trainkit.cli import main

    provider, category, name = arch.relative_to(EXAMPLES_DIR).parts
    proc = package_sh(provider, category, name, "--templates", str(EXAMPLES_DIR), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    monkeypatch.setenv("TRAINKIT_TOKEN", TOKEN)
    with platform_server() as server:
        code = main(["upload", str(tmp_path / layout.ZIP_NAME), "--url", server.url])
    assert code == 0, capsys.readouterr().err
    (request,) = server.requests
    assert f"{TOP}/{provider}/{category}/{name}/config/custom.json" in request["zip_names"]
