"""What the platform's form does to a schema, as WARNING lines for `trainkit validate`.

The constructs and what rjsf does with them are not guessed: `rjsf_observations.json` records
what the real form (the bundle `trainkit form` serves) submitted for a probe schema of each
construct, and a browser test re-observes every entry. This module only recognises those
constructs in an architecture's config.jsonschema and attaches the observed effect.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from importlib import resources
from typing import Any

from jsonschema.exceptions import SchemaError

from trainkit.schema_refs import closed_validator

OBSERVATIONS_FILE = "rjsf_observations.json"

Finding = tuple[str, str]  # (observation id, property path)


@functools.cache
def observations() -> dict[str, dict[str, Any]]:
    """The recorded observations by id (see rjsf_observations.json)."""
    text = (resources.files("trainkit.form") / OBSERVATIONS_FILE).read_text(encoding="utf-8")
    return {entry["id"]: entry for entry in json.loads(text)["observations"]}


def _is_object(schema: dict[str, Any]) -> bool:
    return schema.get("type") == "object" or "properties" in schema


def _has_extra_schema(schema: dict[str, Any]) -> bool:
    return isinstance(schema.get("additionalProperties"), dict) or "patternProperties" in schema


def _undeclared(schema: dict[str, Any], value: Any) -> bool:
    """True when an object value holds keys `schema` does not declare (recursively)."""
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return any(_undeclared(schema["items"], item) for item in value)
    if not (isinstance(value, dict) and _is_object(schema) and not _has_extra_schema(schema)):
        return False
    props = schema.get("properties") or {}
    if not props:
        return False  # reported as free-form-object
    return any(
        key not in props or (isinstance(props[key], dict) and _undeclared(props[key], item))
        for key, item in value.items()
    )


def _object_options(schema: dict[str, Any], keyword: str) -> bool:
    options = schema.get(keyword)
    return isinstance(options, list) and any(
        isinstance(option, dict) and _is_object(option) for option in options
    )


def _null_not_valid(schema: dict[str, Any], root: dict[str, Any]) -> bool:
    sub = dict(schema)
    if "definitions" in root:
        sub.setdefault("definitions", root["definitions"])
    try:
        return not closed_validator(sub).is_valid(None)
    except (SchemaError, LookupError, ValueError):
        return False  # a schema the validator's other checks report


def _properties(schema: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Properties of an object schema, including those of allOf if/then branches."""
    for key, prop in (schema.get("properties") or {}).items():
        if isinstance(prop, dict):
            yield key, prop
    for branch in schema.get("allOf") or []:
        if isinstance(branch, dict) and isinstance(branch.get("then"), dict):
            yield from _properties(branch["then"])


def _walk(
    schema: dict[str, Any], root: dict[str, Any], path: str, depth: int, in_array: bool
) -> Iterator[Finding]:
    for key, prop in _properties(schema):
        where = f"{path}/{key}" if path else key
        if "." in key and depth > 0:
            yield ("dotted-key-in-array-item" if in_array else "dotted-nested-key"), where
        if prop.get("type") == "object" and not prop.get("properties"):
            if not _has_extra_schema(prop):
                yield "free-form-object", where
        elif "default" in prop and _undeclared(prop, prop["default"]):
            yield "undeclared-default-keys", where
        for keyword in ("oneOf", "anyOf"):
            if _object_options(prop, keyword):
                yield f"{keyword.lower()}-object", where
        if (
            depth == 0
            and not {"type", "default", "enum"} & prop.keys()
            and _null_not_valid(prop, root)
        ):
            yield "untyped-null-initial", where
        if _is_object(prop):
            yield from _walk(prop, root, where, depth + 1, in_array)
        items = prop.get("items")
        if isinstance(items, dict) and _is_object(items):
            yield from _walk(items, root, f"{where}/items", depth + 1, True)


def findings(schema: dict[str, Any]) -> list[Finding]:
    """(observation id, property path) for each construct of `schema` the form mishandles."""
    if not isinstance(schema, dict):
        return []
    return list(dict.fromkeys(_walk(schema, schema, "", 0, False)))


def form_warnings(schema: dict[str, Any]) -> list[str]:
    """One message per finding: `property 'opt': <what the platform's form does>`."""
    recorded = observations()
    return [f"property {where!r}: {recorded[oid]['warning']}" for oid, where in findings(schema)]
