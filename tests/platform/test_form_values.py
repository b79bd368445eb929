"""trainkit.platform.form_values runs the backend's own JSONSchemaDefault (shipped in
trainkit/platform/backend): the values the platform's form starts from."""

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
