"""The workspace of a run on trainkit's runtime: the image's build context, made by the
platform's recipe (trainkit/platform/recipe.py) with trainkit's runtime in the stock files'
place, used as the container's WORKDIR by `trainkit run` and built into the image by
`trainkit run --engine ...`.

In the backend's order (later files win): trainkit's legacy shims and entry scripts where the
platform has its stock common/ and datasets/, the packaged docker/ (the architecture's files
and the runtime copy `trainkit package` adds), config/custom.json and config/presets.json,
the export.py shim where the platform puts its export.py, then `train_config.json` (the train
form's values) and `export_config.json` (the export form's). config.jsonschema is NOT part of
it, as on the platform.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from trainkit import layout, schema_refs
from trainkit.errors import TrainkitError
from trainkit.platform import forms, recipe
from trainkit_runtime import bounded_json

SCHEMA_FILENAME = "config.jsonschema"
TRAIN_CONFIG_FILENAME = "train_config.json"
MARKER = recipe.MARKER
architecture_parts = recipe.architecture_parts


def load_schema(arch_dir: Path) -> dict[str, Any]:
    path = Path(arch_dir) / layout.CONFIG_DIR / SCHEMA_FILENAME
    try:
        schema = bounded_json.load_file(path)
    except FileNotFoundError:
        raise TrainkitError(f"{path}: missing") from None
    except OSError as exc:
        raise TrainkitError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except bounded_json.JsonLimitError as exc:
        raise TrainkitError(f"not valid JSON: {exc}") from None
    if not isinstance(schema, dict):
        raise TrainkitError(f"{path}: must hold a JSON object")
    try:
        schema_refs.require_closed(schema, str(path))
    except schema_refs.SchemaRefError as exc:
        raise TrainkitError(str(exc)) from None
    return schema


def validate_config(config: dict[str, Any], schema: dict[str, Any], source: str) -> None:
    """Raise TrainkitError naming the first offending key when config breaks the schema."""
    forms.check_values(config, schema, source)


def train_config(arch_dir: Path, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The train form's values: the platform's initial values (the backend's JSONSchemaDefault)
    updated with single-field `overrides`, validated against config.jsonschema."""
    schema = load_schema(arch_dir)
    start = forms.initial_values(schema, f"{arch_dir}/config/{SCHEMA_FILENAME}")
    user = forms.FormInput(sets=dict(overrides or {}))
    return (
        forms.fill(schema, start, user, recipe.TRAIN_START)
        if user.sets
        else (_checked(start, schema))
    )


def _checked(values: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    forms.check_values(values, schema, recipe.TRAIN_START)
    return values


def assemble(
    arch_dir: Path,
    dest: Path,
    *,
    train: forms.FormInput | None = None,
    export: forms.FormInput | None = None,
    dataset_id: Any = 1,
    torch_cuda_index: str | None = None,
) -> recipe.Assembled:
    """Rebuild dest as the architecture's build context on trainkit's runtime."""
    with tempfile.TemporaryDirectory(prefix="trainkit-model-training-") as tmp:
        stock = recipe.trainkit_model_training(Path(tmp))
        return recipe.assemble(
            arch_dir,
            dest,
            stock,
            train=train,
            export=export,
            dataset_id=dataset_id,
            torch_cuda_index=torch_cuda_index,
        )


def assemble_build_context(
    arch_dir: Path,
    dest: Path,
    config: dict[str, Any] | None = None,
    export_config: dict[str, Any] | None = None,
) -> Path:
    """Rebuild dest as the build context and return it. config / export_config: the complete
    values of the train / export form (None: the platform's initial values)."""
    train = forms.FormInput(file=config, file_name=TRAIN_CONFIG_FILENAME) if config else None
    export = (
        forms.FormInput(file=export_config, file_name="export_config.json")
        if export_config is not None
        else None
    )
    return assemble(arch_dir, dest, train=train, export=export).context
