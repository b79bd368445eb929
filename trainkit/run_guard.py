"""What `trainkit run` checks before it touches anything: its inputs and its roots.

* The run directory belongs to trainkit: `trainkit run` writes (and setup.py deletes stale
  files) only below a directory it created or that carries its marker `.trainkit-run`. A
  non-empty directory without it (e.g. `--output ~/photos`) is refused; so is a run directory
  whose `workspace/`, `datasets/` or `output/` is a symlink (the run would write through it).
* The dataset id is one plain directory name (trainkit_runtime/values.py): it becomes the
  container's DATASET_ID and, after a dataset change, its `.env` line `DATASET_ID='<id>'` (the
  platform's edit), so a newline would add lines such as PYTHONPATH=.
* The architecture's `docker/.env` sets only the keys trainkit_runtime/envfile.py allows
  (the run's roots, PYTHON*, loader and shell variables are refused), checked on the host
  before any entrypoint reads it.
* train.py's argv fits the limits of trainkit_runtime/schema_args.py (no "Argument list too
  long" after the set-up ran): refused up front with the key named.
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

from trainkit import layout
from trainkit.errors import TrainkitError, UsageError
from trainkit_runtime import envfile, schema_args, values

RUN_MARKER = ".trainkit-run"
# The build-context marker of trainkit/workspace.py: run directories made before RUN_MARKER
# existed hold workspace/<it>, and are adopted.
_LEGACY_MARKER = Path("workspace", ".trainkit-build-context")
ROOT_NAMES = ("workspace", "datasets", "output", "context", "image")
# Files of the run directory trainkit run rewrites (trainkit/run.py).
FILE_NAMES = ("run.log", "container.log", "container.json", "container-spec.json")


def check_dataset_id(value: Any, option: str = "--dataset-id") -> str:
    try:
        return values.check_dataset_id(value, option)
    except values.ValueRefused as exc:
        raise UsageError(str(exc)) from None


def check_template_env(arch_dir: Path) -> dict[str, str]:
    """The architecture's docker/.env, parsed by the runtime's parser (allowlisted keys)."""
    try:
        return envfile.read_env_file(Path(arch_dir) / layout.DOCKER_DIR / ".env")
    except envfile.EnvFileError as exc:
        raise TrainkitError(str(exc)) from None


def check_argv(config: dict[str, Any], schema: dict[str, Any] | None) -> None:
    """train.py's argv for config can be built and passed (size limits, key named)."""
    try:
        schema_args.config_to_argv(config, schema)
    except schema_args.SchemaArgsError as exc:
        raise TrainkitError(f"train config: {exc}") from None


def _is_real_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(path.lstat().st_mode)
    except FileNotFoundError:
        return False


def claim_run_dir(run_dir: Path) -> None:
    """Make run_dir trainkit's (new or empty → marked; marked or legacy → kept) or refuse it,
    before anything is written. Nothing is created when it is refused."""
    marker = run_dir / RUN_MARKER
    if run_dir.exists() or run_dir.is_symlink():
        if not run_dir.is_dir():
            raise TrainkitError(f"--output {run_dir}: exists and is not a directory")
        owned = _regular(marker) or _regular(run_dir / _LEGACY_MARKER)
        if not owned and any(run_dir.iterdir()):
            raise TrainkitError(
                f"--output {run_dir}: not empty and not made by trainkit run (no {RUN_MARKER}); "
                "choose a new or empty directory (nothing was changed)"
            )
    for name in ROOT_NAMES:
        root = run_dir / name
        if root.is_symlink() or (root.exists() and not _is_real_dir(root)):
            raise TrainkitError(
                f"{root}: is a symlink or not a directory; trainkit run writes only into "
                "directories it owns (nothing was changed)"
            )
    for name in FILE_NAMES:
        log = run_dir / name
        if log.is_symlink() or (log.exists() and not _regular(log)):
            raise TrainkitError(f"{log}: is a symlink or not a regular file (nothing was changed)")
    run_dir.mkdir(parents=True, exist_ok=True)
    if not _regular(marker):
        marker.write_text(
            "made by trainkit run: workspace/, datasets/, output/ and run.log below are "
            "rewritten by later runs\n",
            encoding="utf-8",
        )


def _regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(path.lstat().st_mode)
    except FileNotFoundError:
        return False
