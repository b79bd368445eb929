"""docker/.env: only the keys a template may set (trainkit_runtime/envfile.py's allowlist).

trainkit's entrypoint refuses any other key and stops the container; the platform's stock
entrypoint `source`s the file, so there any line runs as shell code. Either way a template that
sets OUTPUT_DIR, PYTHONPATH, LD_PRELOAD and the like is an ERROR here, before upload.
"""

from __future__ import annotations

import re
from pathlib import Path

from trainkit import layout
from trainkit.validation.report import Report
from trainkit_runtime import envfile

_SHELL_SPECIALS = re.compile(r"[$`;&|<>()\\\"'\n]")


def check_env_file(arch: Path, rel, report: Report) -> None:
    path = arch / layout.DOCKER_DIR / ".env"
    if not path.is_file():
        return  # the Dockerfile check reports a missing .env
    try:
        values = envfile.read_env_file(path)
    except envfile.EnvFileError as exc:
        # The parser names the file by its path in the temp dir: name it by its ZIP path.
        message = str(exc).removeprefix(f"{path}").lstrip(": ")
        report.error(rel(path), message)
        return
    for key, value in values.items():
        if _SHELL_SPECIALS.search(value):
            report.warning(
                rel(path),
                f"the value of {key} holds shell characters; trainkit's entrypoint keeps it as "
                "text, but the platform's stock entrypoint `source`s .env and would run them",
            )
