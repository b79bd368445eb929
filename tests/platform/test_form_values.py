"""trainkit.platform.form_values runs the backend's own JSONSchemaDefault (shipped in
trainkit/platform/backend): the values the platform's form starts from."""

import json

import pytest

from trainkit import platform


def test_export_form_initial_values_are_the_platforms():
    assert platform.export_form_values() == {
        "model_type": "pytorch",
        "input_names": [],
        "input_shapes": [[1, 3, 224, 224]],
        "input_types": ["float32"],
        "output_names": [],
        "verbose": False,
        "dynamo": False,
        "opset_version": 18,
    }


def test_boolean_without_default_is_true_and_number_takes_its_minimum():
    schema = {"properties": {"flag": {"type": "boolean"}, "lr": {"type": "number", "minimum": 0.5}}}
    assert platform.form_values(schema) == {"flag": True, "lr": 0.5}


def test_schema_without_properties_gives_no_values():
    assert platform.form_values({"type": "object"}) == {}


def test_the_backends_own_failure_is_one_error():
    with pytest.raises(platform.PlatformFormError, match="unhashable type: 'list'"):
        platform.form_values({"properties": {"a": {"type": ["string", "null"]}}})


# --- table: the backend's own class, and what trainkit writes -----------------------------------

ALLOF_OPTIMIZER = [
    {
        "if": {"properties": {"optimizer": {"const": "adam"}}},
        "then": {"properties": {"beta1": {"type": "number", "default": 0.9}}},
    },
    {
        "if": {"properties": {"optimizer": {"const": "sgd"}}},
        "then": {"properties": {"momentum": {"type": "number", "default": 0.5}}},
    },
]

# (case, properties, allOf, the values JSONSchemaDefault gives, spelled out by its rules)
FORM_CASES = [
    ("boolean without default: true", {"flag": {"type": "boolean"}}, None, {"flag": True}),
    ("boolean default kept", {"f": {"type": "boolean", "default": False}}, None, {"f": False}),
    ("integer: its minimum", {"n": {"type": "integer", "minimum": 3}}, None, {"n": 3}),
    ("number: its minimum", {"lr": {"type": "number", "minimum": 0.5}}, None, {"lr": 0.5}),
    ("number without minimum: 0", {"x": {"type": "number"}}, None, {"x": 0}),
    ("string: empty", {"s": {"type": "string"}}, None, {"s": ""}),
    (
        "enum: the first value",
        {"o": {"type": "string", "enum": ["sgd", "adam"]}},
        None,
        {"o": "sgd"},
    ),
    (
        "default before enum",
        {"o": {"type": "string", "enum": ["sgd", "adam"], "default": "adam"}},
        None,
        {"o": "adam"},
    ),
    (
        "nested object: recursively",
        {
            "sched": {
                "type": "object",
                "properties": {
                    "warmup": {"type": "integer", "minimum": 1},
                    "on": {"type": "boolean"},
                    "gamma": {"type": "number", "default": 0.1},
                },
            }
        },
        None,
        {"sched": {"warmup": 1, "on": True, "gamma": 0.1}},
    ),
    (
        "array: one item of the items' default",
        {"ms": {"type": "array", "items": {"type": "number", "default": 0.5}}},
        None,
        {"ms": [0.5]},
    ),
    (
        "array of strings without default: one empty string",
        {"names": {"type": "array", "items": {"type": "string"}}},
        None,
        {"names": [""]},
    ),
    ("array default kept", {"ms": {"type": "array", "default": [1, 2]}}, None, {"ms": [1, 2]}),
    (
        "allOf if/then: the matching branch's defaults",
        {"optimizer": {"type": "string", "enum": ["adam", "sgd"]}},
        ALLOF_OPTIMIZER,
        {"optimizer": "adam", "beta1": 0.9},
    ),
]


def backend_values(schema: dict) -> dict:
    """The backend's JSONSchemaDefault, loaded here straight from the shipped file."""
    import importlib.util

    path = platform.BACKEND_DIR / "agri_gaia_backend" / "util" / "jsonschema.py"
    spec = importlib.util.spec_from_file_location("backend_jsonschema_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.JSONSchemaDefault(schema).get_default_values()


def schema_of(properties: dict, all_of: list | None) -> dict:
    schema = {"type": "object", "properties": properties}
    if all_of:
        schema["allOf"] = all_of
    return schema


@pytest.mark.parametrize(
    ("properties", "all_of", "expected"),
    [case[1:] for case in FORM_CASES],
    ids=[case[0] for case in FORM_CASES],
)
def test_form_values_are_the_backends(properties, all_of, expected, tmp_path):
    import shutil

    from tests.support.repo import EXAMPLES_DIR
    from trainkit import workspace

    schema = schema_of(properties, all_of)
    assert backend_values(json.loads(json.dumps(schema))) == expected
    assert platform.form_values(schema) == expected
    # what `trainkit run` writes as train_config.json for an architecture with this schema
    arch = tmp_path / "templates" / "Acme" / "Classification" / "Probe"
    shutil.copytree(EXAMPLES_DIR / "Acme" / "Classification" / "TinyNet", arch)
    (arch / "config" / "config.jsonschema").write_text(json.dumps(schema))
    context = workspace.assemble(arch, tmp_path / "workspace").context
    assert json.loads((context / "train_config.json").read_text()) == expected


def test_a_type_list_fails_with_typeerror_not_type_unknown():
    """The backend means to raise RuntimeError("Type unknown.") for a type it does not know, but
    for a list its print() builds a set of the list first: TypeError. A string type it does not
    know ("null") does reach the RuntimeError."""
    with pytest.raises(TypeError, match="unhashable type: 'list'"):
        backend_values({"properties": {"a": {"type": ["string", "null"]}}})
    with pytest.raises(RuntimeError, match="Type unknown"):
        backend_values({"properties": {"a": {"type": "null"}}})
