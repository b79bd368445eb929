"""A template's ``.env``: which keys it may set, and the one parser every reader uses.

``.env`` ships inside the template and wins over the container environment (the platform
rewrites ``DATASET_ID`` there). Letting it set anything would let a template move the run's roots
(``OUTPUT_DIR``, ``DATASETS_ROOT``, ``MINIO_ROOT``: ``trainkit run`` would then write and delete
in another directory of the host), load code (``PYTHONPATH``, ``PYTHONSTARTUP``, ``LD_PRELOAD``,
``BASH_ENV``), or steer credentials (``AWS_*``, ``S3_*``, ``OID_*``). A denylist always misses
one, so this is an ALLOWLIST (:data:`ALLOWED_KEYS` plus the researcher's own ``APP_*`` keys);
every other key is refused with one line naming it and the line.

Format: ``KEY=VALUE`` lines, optional ``export``, optional matching quotes around VALUE,
unquoted values end at `` #``; ``#`` comment lines and blank lines. Values are data: never
evaluated and never printed. Limits: :data:`MAX_LINE_BYTES` per line, :data:`MAX_FILE_BYTES`
per file; values hold no control characters.

``python -m trainkit_runtime.envfile FILE`` prints ``KEY=VALUE`` pairs NUL-separated for
``docker-entrypoint.sh`` (exit 1 with one line on stderr on the first problem).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from trainkit_runtime.bounded_json import NotARegularFile, read_regular_file

__all__ = [
    "ALLOWED_KEYS",
    "APP_KEY_PATTERN",
    "MAX_FILE_BYTES",
    "MAX_LINE_BYTES",
    "EnvFileError",
    "key_allowed",
    "parse_env_text",
    "read_env_file",
]

MAX_LINE_BYTES = 4096
MAX_FILE_BYTES = 64 * 1024
# The researcher's own settings: APP_ and upper-case letters, digits, underscores.
APP_KEY_PATTERN = r"^APP_[A-Z0-9_]{1,60}$"
ALLOWED_KEYS = frozenset(
    {
        "DATASET_ID",  # the platform writes it here when the dataset changes
        "NPROC_PER_NODE",  # processes per node (docker-entrypoint.sh starts torchrun)
        # thread pools of numpy/torch/tokenizers
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "NUMEXPR_NUM_THREADS",
        "TOKENIZERS_PARALLELISM",
        # device selection and CUDA/NCCL diagnostics (no library-loading settings)
        "CUDA_VISIBLE_DEVICES",
        "CUDA_LAUNCH_BLOCKING",
        "PYTORCH_CUDA_ALLOC_CONF",
        "NCCL_DEBUG",
        "NCCL_SOCKET_IFNAME",
        "NCCL_IB_DISABLE",
        "NCCL_P2P_DISABLE",
        "TORCH_DISTRIBUTED_DEBUG",
        "TORCH_NCCL_ASYNC_ERROR_HANDLING",
        # experiment trackers' non-secret settings
        "WANDB_MODE",
        "WANDB_PROJECT",
        "MLFLOW_EXPERIMENT_NAME",
        "TZ",
    }
)
_APP_KEY_RE = re.compile(APP_KEY_PATTERN)
_LINE_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)[ \t]*=(.*)$")
_EXPORT_RE = re.compile(r"^export[ \t]+")


class EnvFileError(ValueError):
    """A line of a template .env that is refused; the message names the file, line and key
    (never the value)."""


def key_allowed(key: str) -> bool:
    return key in ALLOWED_KEYS or _APP_KEY_RE.fullmatch(key) is not None


def _value(raw: str) -> str:
    raw = raw.lstrip(" \t")
    if len(raw) >= 2 and raw[0] in "\"'" and raw[-1] == raw[0]:
        return raw[1:-1]
    return re.split(r"[ \t]#", raw, maxsplit=1)[0].rstrip(" \t")


def parse_env_text(text: str, source: str = ".env") -> dict[str, str]:
    """KEY → VALUE of a template .env; EnvFileError on the first refused line."""
    values: dict[str, str] = {}
    for number, line in enumerate(text.split("\n"), start=1):
        if len(line.encode("utf-8", "surrogateescape")) > MAX_LINE_BYTES:
            raise EnvFileError(
                f"{source} line {number}: longer than the limit {MAX_LINE_BYTES} bytes"
            )
        line = line.removesuffix("\r").strip(" \t")
        if not line or line.startswith("#"):
            continue
        line = _EXPORT_RE.sub("", line, count=1)
        match = _LINE_RE.match(line)
        if match is None:
            raise EnvFileError(f"{source} line {number}: not KEY=VALUE with a valid name")
        key, value = match.group(1), _value(match.group(2))
        if not key_allowed(key):
            raise EnvFileError(
                f"{source} line {number}: {key} may not be set by a template .env (allowed: "
                "DATASET_ID, NPROC_PER_NODE, thread/CUDA/NCCL/tracker settings listed in "
                "trainkit_runtime/envfile.py, and APP_* keys)"
            )
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise EnvFileError(f"{source} line {number}: the value of {key} has control characters")
        values[key] = value
    return values


def read_env_file(path: str | Path) -> dict[str, str]:
    """parse_env_text of a regular file (a missing file is empty); EnvFileError otherwise."""
    path = Path(path)
    try:
        data = read_regular_file(path, MAX_FILE_BYTES)
    except FileNotFoundError:
        return {}
    except NotARegularFile as exc:
        raise EnvFileError(str(exc)) from None
    except OSError as exc:
        raise EnvFileError(f"{path}: cannot read ({exc.strerror})") from None
    if len(data) > MAX_FILE_BYTES:
        raise EnvFileError(f"{path}: larger than the limit {MAX_FILE_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EnvFileError(f"{path}: not UTF-8 (byte {exc.start})") from None
    return parse_env_text(text, str(path))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m trainkit_runtime.envfile FILE", file=sys.stderr)
        return 2
    try:
        values = read_env_file(args[0])
    except EnvFileError as exc:
        print(f"{exc}", file=sys.stderr)
        return 1
    out = sys.stdout.buffer
    out.write(b"".join(f"{k}={v}".encode() + b"\0" for k, v in values.items()))
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
