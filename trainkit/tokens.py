"""Bearer tokens from files: one reader for `trainkit upload --token-file` and `trainkit run
--s3 --token-file`. The content is never shown: a file with two lines is refused (a second line
would become another HTTP header or another line of the container's --env-file).
"""

from __future__ import annotations

import logging
import stat
from pathlib import Path

from trainkit.errors import TrainkitError
from trainkit_runtime import bounded_json
from trainkit_runtime.redaction import token_problem

log = logging.getLogger(__name__)

MAX_TOKEN_BYTES = 64 * 1024


def read_token_file(token_file: Path, option: str = "--token-file") -> str:
    """The one-line token in `token_file` (a regular file); TrainkitError naming the problem,
    never the content (a multi-line file is refused: a second line would become a header or
    an env line)."""
    try:
        data = bounded_json.read_regular_file(token_file, MAX_TOKEN_BYTES, follow_symlinks=True)
        mode = token_file.stat().st_mode
    except OSError as exc:
        raise TrainkitError(f"{option} {token_file}: {exc.strerror or exc}") from None
    if len(data) > MAX_TOKEN_BYTES:
        raise TrainkitError(f"{option} {token_file}: larger than {MAX_TOKEN_BYTES} bytes")
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("warning: %s is readable by others; chmod 600 it", token_file)
    token = data.decode("utf-8", "replace").strip()
    if problem := token_problem(token):
        raise TrainkitError(f"{option} {token_file}: {problem}")
    return token
