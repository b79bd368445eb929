"""setuptools hook: build the `trainkit form` page when the source tree lacks it.

The bundle (trainkit/form/static/form.js) is built from frontend/ by scripts/build-form and is
not committed, so a wheel or an install from a clean clone builds it here; node_modules/ stays
outside the package and therefore outside the wheel.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
BUNDLE = ROOT / "trainkit" / "form" / "static" / "form.js"
BUILD_SCRIPT = ROOT / "scripts" / "build-form"


class BuildPyWithForm(build_py):
    """build_py that first runs scripts/build-form when form.js is missing."""

    def run(self) -> None:
        if not BUNDLE.is_file():
            if not BUILD_SCRIPT.is_file():
                raise RuntimeError(f"{BUNDLE} is missing and {BUILD_SCRIPT} is not here")
            subprocess.run(["bash", str(BUILD_SCRIPT)], check=True)
        super().run()
