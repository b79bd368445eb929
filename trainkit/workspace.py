"""The image build context of an architecture, assembled the way the platform does it.

DESIGN.md §3, in the platform's order (later files win): the legacy module shims (where the
platform has its stock common/ and datasets/), the runtime copy and the architecture's docker/
files (what the ZIP's docker/ holds), config/{custom,presets,export_config}.json, the export.py
shim (the platform copies its own export.py last), then `train_config.json` (the form's values).
config.jsonschema is NOT part of it, as on the platform. `trainkit run` uses the directory as the
container's WORKDIR; `trainkit run --engine ...` builds the image from it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from trainkit import layout, schema_refs, vendor
from trainkit.errors import TrainkitError
from trainkit_runtime import bounded_json, schema_args

SCHEMA_FILENAME = "config.jsonschema"
TRAIN_CONFIG_FILENAME = "train_config.json"
# Config files copied from config/ into the context (when present).
CONTEXT_CONFIG_FILES = ("custom.json", "presets.json", *layout.OPTIONAL_CONFIG_FILES)
# Written into every context we assemble, so a later run may wipe it safely.
MARKER = ".trainkit-build-context"
# The platform copies its export.py after the template's docker/ files: ours goes in last too.
EXPORT_SHIM = "export.py"
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", ".DS_Store")


def architecture_parts(arch_dir: Path) -> tuple[str, str, str]:
    """(provider, category, architecture) of an architecture directory; checks its shape."""
    arch_dir = Path(arch_dir)
    for sub in (layout.CONFIG_DIR, layout.DOCKER_DIR):
        if not (arch_dir / sub).is_dir():
            raise TrainkitError(
                f"{arch_dir}: not an architecture directory (no {sub}/); expected "
                "templates/<provider>/<category>/<architecture>"
            )
    resolved = arch_dir.resolve()
    return resolved.parent.parent.name, resolved.parent.name, resolved.name


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
    validator = schema_refs.closed_validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: [str(p) for p in e.path])
    if errors:
        error = errors[0]
        where = "/".join(str(p) for p in error.path) or "(top level)"
        raise TrainkitError(f"{source}: {where}: {error.message}")


def train_config(
    arch_dir: Path, overrides: dict[str, Any] | None = None, source: str = "train config"
) -> dict[str, Any]:
    """The form's values: the schema's defaults updated with overrides, validated."""
    schema = load_schema(arch_dir)
    config = dict(schema_args.schema_defaults(schema))
    config.update(overrides or {})
    validate_config(config, schema, source)
    return config


def _clear(dest: Path) -> None:
    if dest.exists():
        if any(dest.iterdir()) and not (dest / MARKER).exists():
            raise TrainkitError(f"{dest}: exists and was not made by trainkit; not touching it")
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    (dest / MARKER).write_text("assembled by trainkit; rebuilt on every run\n", encoding="utf-8")


def assemble_build_context(
    arch_dir: Path, dest: Path, config: dict[str, Any] | None = None
) -> Path:
    """Rebuild dest as the architecture's build context and return it.

    config: the train_config.json content (None: the schema's defaults); validated against
    config.jsonschema. dest is wiped first (only if trainkit made it).
    """
    arch_dir, dest = Path(arch_dir), Path(dest)
    architecture_parts(arch_dir)
    if config is None:
        config = train_config(arch_dir)
    else:
        validate_config(config, load_schema(arch_dir), TRAIN_CONFIG_FILENAME)
    vendor.runtime_files()  # fails before dest is touched when the runtime is incomplete
    _clear(dest)
    shims = vendor.legacy_shims()
    vendor.write_legacy_shims(dest, [name for name in shims if name != EXPORT_SHIM])
    vendor.copy_runtime(dest)
    shutil.copytree(arch_dir / layout.DOCKER_DIR, dest, dirs_exist_ok=True, ignore=IGNORED)
    for name in CONTEXT_CONFIG_FILES:
        source = arch_dir / layout.CONFIG_DIR / name
        if source.is_file():
            shutil.copy2(source, dest / name)
    vendor.write_legacy_shims(dest, [EXPORT_SHIM])
    (dest / TRAIN_CONFIG_FILENAME).write_text(json.dumps(config, indent=2) + "\n", "utf-8")
    if not (dest / ".env").exists():
        (dest / ".env").write_text("", encoding="utf-8")
    return dest


def set_env_file_value(env_file: Path, key: str, value: str) -> None:
    """Set KEY=value in a .env file (replacing an existing KEY line), as the platform does for
    DATASET_ID; docker-entrypoint.sh lets .env win over the environment."""
    lines = env_file.read_text(encoding="utf-8").splitlines() if env_file.exists() else []
    kept = [
        line
        for line in lines
        if line.split("=", 1)[0].strip().removeprefix("export ").strip() != key
    ]
    env_file.write_text("\n".join([*kept, f"{key}={value}"]) + "\n", encoding="utf-8")
