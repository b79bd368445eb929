"""The platform's initial form values and its export form, for `trainkit form`.

The platform's frontend starts its forms from the backend's `JSONSchemaDefault` (booleans
without default are True, numbers start at their minimum, `allOf` if/then defaults are added),
so `trainkit form` uses that exact class through `trainkit.platform`, not our own
`schema_defaults`.
"""

from __future__ import annotations

import copy
from typing import Any

from trainkit import platform
from trainkit.errors import TrainkitError


class InitialValuesError(TrainkitError):
    """The platform's JSONSchemaDefault cannot compute a schema's initial values."""


def initial_values(schema: dict[str, Any]) -> dict[str, Any]:
    """What the platform's form starts with for `schema` (JSONSchemaDefault's values)."""
    try:
        return platform.form_values(copy.deepcopy(schema))
    except platform.PlatformFormError as exc:
        raise InitialValuesError(
            f"the platform cannot compute the form's initial values: {exc}"
        ) from exc


def export_schema() -> dict[str, Any]:
    """The platform's ONNX export form (`model-training/export/export.jsonschema`)."""
    return copy.deepcopy(platform.export_schema())
