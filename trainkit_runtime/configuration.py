"""Training configuration: the platform's form values (``train_config.json``) plus presets.

Name- and call-compatible with the platform's ``config.py`` (``setup.py`` files import
``load_config`` / ``finalize_config`` by name); paths are relative to the WORKDIR like there.
Differences, all on purpose:

* the merged config is written atomically (temp file in the same directory + ``os.replace``),
  so a crash can never leave a truncated ``train_config.json`` for ``config_to_args.py``;
* a missing or broken JSON file raises :class:`ConfigError` with one line naming the file and the
  problem (line/column), instead of a bare ``JSONDecodeError`` traceback;
* a missing ``presets.json`` counts as ``{}`` (logged as a warning): the platform always ships
  one, and a local run without presets should still work;
* ``finalize_config`` returns the merged dict (the platform's returns ``None``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from trainkit_runtime import bounded_json
from trainkit_runtime.atomic_files import target_mode, write_text_atomically

TRAIN_CONFIG_FILEPATH = "./train_config.json"
PRESETS_FILEPATH = "./presets.json"

log = logging.getLogger(__name__)


class ConfigError(Exception):
    """A config file is missing or not a JSON object; the message names the file."""


def read_json_object(path: str | Path) -> dict[str, Any]:
    """Read a JSON object from ``path`` or raise one clear :class:`ConfigError`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found (cwd: {Path.cwd()})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    try:
        data = bounded_json.loads(text, str(path), strict=False)
    except bounded_json.JsonLimitError as exc:
        raise ConfigError(str(exc)) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def write_json_atomic(path: str | Path, data: Any) -> None:
    """Write JSON so readers see the old file or the complete new one, never a partial one; a
    rewrite keeps the file's permissions (atomic_files.py)."""
    path = Path(path)
    text = json.dumps(data, indent=4) + "\n"  # fails before any file is touched
    write_text_atomically(path, text, mode=target_mode(path))


def load_config() -> dict[str, Any]:
    """The form values from ``train_config.json`` in the WORKDIR."""
    return read_json_object(TRAIN_CONFIG_FILEPATH)


def load_presets() -> dict[str, Any]:
    """``presets.json``, or ``{}`` with a warning when the file does not exist."""
    if not Path(PRESETS_FILEPATH).exists():
        log.warning("%s not found: using no presets", PRESETS_FILEPATH)
        return {}
    return read_json_object(PRESETS_FILEPATH)


def finalize_config(
    config: Mapping[str, Any], custom: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Merge ``{**config, **presets, **custom}`` (presets beat the form, custom beats both) and
    write it to ``train_config.json`` atomically; returns the merged config.

    ``custom`` defaults to ``None`` rather than the platform's mutable ``{}``; callers passing a
    dict or nothing behave the same.
    """
    merged = {**config, **load_presets(), **(custom or {})}
    write_json_atomic(TRAIN_CONFIG_FILEPATH, merged)
    return merged
