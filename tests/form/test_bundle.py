"""The page is built from the locked npm packages the platform's frontend uses, shipped inside
the package (and the wheel), without node_modules."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from importlib import resources
from pathlib import Path

import pytest

from tests.support.repo import REPO_ROOT
from tests.support.services import skip_or_fail
from trainkit.form import rjsf_findings

FRONTEND = REPO_ROOT / "frontend"


def locked_versions() -> dict[str, str]:
    lock = json.loads((FRONTEND / "package-lock.json").read_text())
    return {
        name.removeprefix("node_modules/"): entry["version"]
        for name, entry in lock["packages"].items()
        if name.startswith("node_modules/")
    }


def test_lockfile_pins_the_platforms_stack() -> None:
    versions = locked_versions()
    assert versions["@rjsf/core"].startswith("4.")
    assert versions["@rjsf/material-ui"].startswith("4.")
    assert versions["react"].startswith("17.") and versions["react-dom"].startswith("17.")
    assert versions["ajv"].startswith("6.")  # the validator rjsf 4 uses
    assert versions["@mui/material"].startswith("5.")  # @rjsf/material-ui/v5, as imported


def test_observations_were_made_with_the_locked_rjsf() -> None:
    observed = json.loads(
        (resources.files("trainkit.form") / rjsf_findings.OBSERVATIONS_FILE).read_text()
    )["observed_with"]
    versions = locked_versions()
    assert observed["@rjsf/core"] == versions["@rjsf/core"]
    assert observed["@rjsf/material-ui"] == versions["@rjsf/material-ui"]


def test_installed_package_has_the_built_page() -> None:
    static = resources.files("trainkit.form") / "static"
    bundle = (static / "form.js").read_text(encoding="utf-8")
    assert len(bundle) > 100_000
    assert "liveOmit" in bundle and "omitExtraData" in bundle  # rjsf core is in it
    assert "http://" not in (static / "index.html").read_text()  # no CDN


@pytest.mark.slow
def test_wheel_from_a_clean_tree_ships_the_bundle(tmp_path: Path) -> None:
    """A checkout without the bundle or node_modules: building the wheel builds the page."""
    if shutil.which("npm") is None:
        skip_or_fail("npm is not installed (needed to build the form bundle)")
    tracked = (
        subprocess.run(["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True)
        .stdout.decode()
        .split("\0")
    )
    tree = tmp_path / "tree"
    for name in filter(None, tracked):
        source = REPO_ROOT / name
        if source.is_file():
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, tree / name)
    assert not (tree / "trainkit" / "form" / "static" / "form.js").exists()
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
    subprocess.run(
        [*pip_wheel, "-w", str(tmp_path / "dist"), str(tree)],
        check=True,
        timeout=600,
    )
    (wheel,) = (tmp_path / "dist").glob("trainkit-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "trainkit/form/static/form.js" in names
    assert "trainkit/form/static/index.html" in names
    assert "trainkit/form/rjsf_observations.json" in names
    assert not [name for name in names if "node_modules" in name]
