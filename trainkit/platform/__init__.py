"""The platform's behaviour, modelled in one place from its own code.

`backend/` holds the Agri-Gaia backend's files unchanged (MIT, see backend/NOTICE). Where
trainkit needs to behave like the platform, it runs that code or reads those files here, rather
than re-implementing them:

    __init__          the forms' initial values: the backend's own JSONSchemaDefault
    backend_code      compiles the backend's functions from its files and runs them here
    local             its train endpoints (build, edit, score, model) over a local stand-in
    recipe            build_train_image's build context, with the stock or trainkit's files
    forms             the train and export forms, filled like a user does
    lookup            its file look-ups by substring (names it confuses, stray config files)
    container, image  the built container without an engine: its files, its log
    stock_entrypoint  the stock docker-entrypoint.sh, emulated without source/eval
    score             the score it stores, from the last 50 lines of the log

The upload rules (validation/*.json) are read by trainkit.validation.schemas.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

BACKEND_DIR = Path(__file__).resolve().parent / "backend"
MODEL_TRAINING_DIR = BACKEND_DIR / "model-training"
EXPORT_SCHEMA_FILE = MODEL_TRAINING_DIR / "export" / "export.jsonschema"
_JSONSCHEMA_PY = BACKEND_DIR / "agri_gaia_backend" / "util" / "jsonschema.py"


class PlatformFormError(ValueError):
    """The platform's form code fails on this schema (the user would see no form)."""


@cache
def _jsonschema_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_agri_gaia_jsonschema", _JSONSCHEMA_PY)
    if spec is None or spec.loader is None:
        raise PlatformFormError(f"{_JSONSCHEMA_PY}: cannot be loaded")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def json_schema_default_class() -> type:
    """The backend's own JSONSchemaDefault class (for running its code that uses it)."""
    return _jsonschema_module().JSONSchemaDefault


def form_values(schema: dict[str, Any]) -> dict[str, Any]:
    """The values the platform's form starts from for `schema`: the backend's own
    `JSONSchemaDefault(schema).get_default_values()` (booleans without default are True,
    numbers take their `minimum`, `allOf` if/then defaults apply, ...). The backend returns
    None for a schema without properties; that is {} here. Raises PlatformFormError where the
    backend's code raises (e.g. a `type` list: "Type unknown.")."""
    cls = json_schema_default_class()
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # it prints before it raises
            values = cls(schema).get_default_values()
    except RecursionError:
        raise PlatformFormError("the schema nests too deeply for the platform's form") from None
    except Exception as exc:  # the backend's own failure: report it, do not crash
        raise PlatformFormError(f"{type(exc).__name__}: {exc}") from None
    return dict(values or {})


@cache
def export_schema() -> dict[str, Any]:
    """The platform's ONNX export form (`model-training/export/export.jsonschema`)."""
    return json.loads(EXPORT_SCHEMA_FILE.read_text(encoding="utf-8"))


def export_form_values() -> dict[str, Any]:
    """The export form's initial values (what `export_config.json` holds when the user does not
    touch the export form), e.g. `input_shapes [[1, 3, 224, 224]]`, `dynamo false`."""
    return form_values(export_schema())
