"""The platform's initial form values and its export form, behind one small seam.

The platform's frontend starts its forms from the backend's `JSONSchemaDefault` (booleans
without default are True, numbers start at their minimum, `allOf` if/then defaults are added,
a `type` list raises "Type unknown"), so `trainkit form` must use that exact class, not our own
`schema_defaults`. The stock backend files are not part of trainkit yet; until they are
vendored under `trainkit/platform/`, they are loaded by path from the platform checkout
(`$TRAINKIT_PLATFORM_DIR`, default `shared/platform` beside the trainkit checkout).
TODO(lead): replace `_platform_dir()` and the two loaders with the vendored module.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import importlib.util
import io
import json
import os
from pathlib import Path
from types import ModuleType
from typing import Any

from trainkit.errors import TrainkitError

ENV_PLATFORM_DIR = "TRAINKIT_PLATFORM_DIR"
JSONSCHEMA_DEFAULT = Path("agri_gaia_backend", "util", "jsonschema.py")
EXPORT_SCHEMA = Path("model-training", "export", "export.jsonschema")


class PlatformFilesMissing(TrainkitError):
    """The platform's backend files (JSONSchemaDefault, export.jsonschema) cannot be found."""


def _platform_dir() -> Path:
    configured = os.environ.get(ENV_PLATFORM_DIR)
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2].parent / "shared" / "platform"


def _platform_file(relative: Path) -> Path:
    path = _platform_dir() / relative
    if not path.is_file():
        raise PlatformFilesMissing(
            f"{path}: the platform's file is missing (set ${ENV_PLATFORM_DIR} to the platform "
            "backend's copy)"
        )
    return path


@functools.cache
def _jsonschema_default_module() -> ModuleType:
    path = _platform_file(JSONSCHEMA_DEFAULT)
    spec = importlib.util.spec_from_file_location("_trainkit_platform_jsonschema", path)
    if spec is None or spec.loader is None:
        raise PlatformFilesMissing(f"{path}: cannot be imported")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class InitialValuesError(TrainkitError):
    """The platform's JSONSchemaDefault cannot compute a schema's initial values."""


def initial_values(schema: dict[str, Any]) -> Any:
    """What the platform's form starts with for `schema`: `JSONSchemaDefault(schema)
    .get_default_values()`, unchanged (None when it finds no values, as on the platform)."""
    cls = _jsonschema_default_module().JSONSchemaDefault
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # it prints before raising
            return cls(copy.deepcopy(schema)).get_default_values()
    except (RuntimeError, KeyError, TypeError, AttributeError) as exc:
        raise InitialValuesError(
            f"the platform cannot compute the form's initial values: {type(exc).__name__}: {exc}"
        ) from exc


@functools.cache
def _export_schema_text() -> str:
    return _platform_file(EXPORT_SCHEMA).read_text(encoding="utf-8")


def export_schema() -> dict[str, Any]:
    """The platform's ONNX export form (`model-training/export/export.jsonschema`)."""
    return json.loads(_export_schema_text())
