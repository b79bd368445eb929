"""The two forms a platform user fills before a build: the train form and the ONNX export form.

Each starts from the backend's `JSONSchemaDefault` values (trainkit.platform.form_values);
what the user does then is either loading a set of values (the platform's "upload config", a
file saved by `trainkit form` or downloaded from the platform) or changing single fields
(`--set`, `--export-set`). `--export-config FILE` replaces the export form's values (`{}` =
the export switched off); `--config FILE` is applied over the train form's starting values (a
complete saved form gives its own values; a partial file changes only its keys). The frontend
validates live and does not submit invalid values, so neither does trainkit: the first
offending key is one line. An export form switched off is `{}` (the backend then writes `{}`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainkit import platform, schema_refs
from trainkit.errors import TrainkitError
from trainkit_runtime import bounded_json


class FormError(TrainkitError):
    """Form values the platform's form would not submit (or could not start from)."""


@dataclass
class FormInput:
    """What the user did in one form: loaded a file of values and/or changed fields."""

    file: dict[str, Any] | None = None
    file_name: str | None = None
    sets: dict[str, Any] = field(default_factory=dict)
    sets_name: str = "--set"  # the option the field changes came from
    replace: bool = True  # the file replaces the form's values (else: merged over them)

    @property
    def empty(self) -> bool:
        return self.file is None and not self.sets

    def describe(self, start: str) -> str:
        parts = [start] if self.file is None or not self.replace else []
        if self.file is not None:
            parts.append(self.file_name or "a file of values")
        if self.sets:
            parts.append(self.sets_name)
        return " + ".join(parts)


def read_values_file(path: Path, option: str) -> dict[str, Any]:
    """A JSON object of form values (bounded: trainkit_runtime.bounded_json; one line naming
    the file on any problem)."""
    try:
        data = bounded_json.load_file(Path(path), f"{option} {path}", strict=False)
    except FileNotFoundError:
        raise FormError(f"{option} {path}: no such file") from None
    except OSError as exc:
        raise FormError(f"{option} {path}: cannot read: {exc.strerror or exc}") from None
    except ValueError as exc:  # bounded_json's syntax and limit errors name the file
        raise FormError(str(exc)) from None
    if not isinstance(data, dict):
        raise FormError(f"{option} {path}: must hold a JSON object of form values")
    return data


def initial_values(schema: dict[str, Any], what: str) -> dict[str, Any]:
    try:
        return platform.form_values(copy.deepcopy(schema))
    except platform.PlatformFormError as exc:
        raise FormError(
            f"{what}: the platform cannot compute the form's initial values ({exc}); its form "
            "would not open"
        ) from None


def require_closed(schema: Any, where: str) -> None:
    """FormError when the schema refers outside itself (trainkit/schema_refs.py): trainkit
    never fetches or reads a `$ref`'s target."""
    try:
        schema_refs.require_closed(schema, where)
    except schema_refs.SchemaRefError as exc:
        raise FormError(str(exc)) from None


def check_values(values: dict[str, Any], schema: dict[str, Any], source: str) -> None:
    """FormError naming the first offending key when `values` break `schema`."""
    validator = schema_refs.closed_validator(schema)  # a $ref is never fetched
    errors = sorted(validator.iter_errors(values), key=lambda e: [str(p) for p in e.path])
    if errors:
        error = errors[0]
        where = "/".join(str(p) for p in error.path) or "(top level)"
        raise FormError(f"{source}: {where}: {error.message}")


def fill(
    schema: dict[str, Any],
    start: dict[str, Any],
    user: FormInput,
    start_name: str,
    *,
    allow_empty: bool = False,
) -> dict[str, Any]:
    """The values the form submits: `start` (its initial or current values), replaced by the
    user's file, updated by the user's field changes, validated against the schema."""
    if user.file is not None and user.replace:
        values = copy.deepcopy(user.file)
    else:
        values = {**copy.deepcopy(start), **copy.deepcopy(user.file or {})}
    values.update(copy.deepcopy(user.sets))
    if allow_empty and not values:
        return values  # the export form switched off
    check_values(values, schema, user.describe(start_name))
    return values
