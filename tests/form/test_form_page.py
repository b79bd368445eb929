"""The page `trainkit form` serves, in a real headless Chromium: for each example architecture
and for a schema with every construct the examples' authors may use, a field per property,
the platform's initial values (JSONSchemaDefault) in rjsf's own state, an edit saved as the
expected JSON, and an invalid value shown with rjsf's error and not saved."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.form import harness
from tests.support.repo import EXAMPLES_DIR
from trainkit import workspace
from trainkit.form import initial

EXAMPLES = ("Acme/Classification/TinyNet", "Acme/Detection/TinyDet", "Acme/Segmentation/TinySeg")

# enum, boolean without default, integer with minimum (no default), array of numbers, nested
# object, allOf if/then (the active branch's field is shown, the other's is not).
CONSTRUCTS: dict[str, Any] = {
    "title": "Constructs",
    "type": "object",
    "properties": {
        "optimizer": {
            "type": "string",
            "title": "Optimizer",
            "enum": ["adam", "sgd"],
            "default": "adam",
        },
        "augment": {"type": "boolean", "title": "Augment"},
        "epochs": {"type": "integer", "title": "Epochs", "minimum": 1},
        "lr-milestones": {
            "type": "array",
            "title": "LR milestones",
            "items": {"type": "number"},
            "default": [0.5, 0.75],
        },
        "schedule": {
            "type": "object",
            "title": "Schedule",
            "properties": {
                "warmup": {"type": "integer", "title": "Warm-up", "minimum": 0, "default": 2},
                "gamma": {"type": "number", "title": "Gamma", "default": 0.1},
            },
        },
    },
    "allOf": [
        {
            "if": {"properties": {"optimizer": {"const": "sgd"}}},
            "then": {
                "properties": {
                    "momentum": {
                        "type": "number",
                        "title": "Momentum",
                        "minimum": 0,
                        "default": 0.9,
                    }
                }
            },
        },
        {
            "if": {"properties": {"optimizer": {"const": "adam"}}},
            "then": {
                "properties": {"beta1": {"type": "number", "title": "Beta 1", "default": 0.9}}
            },
        },
    ],
    "required": ["optimizer", "epochs"],
}


def field_ids(form: harness.OpenForm, key: str) -> list[str]:
    """Ids of the train form's elements for property `key` (rjsf: root_<key>[_<sub>...])."""
    return form.page.evaluate(
        """key => Array.from(document.querySelectorAll('#train-form [id]'))
              .map(e => e.id)
              .filter(id => id === 'root_' + key || id.startsWith('root_' + key + '_'))""",
        key,
    )


def check_screenshot(form: harness.OpenForm, path: Path) -> None:
    form.page.screenshot(path=str(path), full_page=True)
    data = path.read_bytes()
    assert harness.png_header_ok(data), f"{path} is not a PNG"
    assert not harness.png_is_blank(path), f"{path} is blank"


def check_invalid_not_saved(form: harness.OpenForm, selector: str, bad: str, error: str) -> None:
    form.page.fill(selector, bad)
    form.page.wait_for_timeout(200)
    text = form.page.inner_text("#train-form")
    assert error in text, f"rjsf's error {error!r} not shown after {bad!r}: {text[:500]}"
    outcome = form.save()
    assert outcome["ok"] is False, outcome
    assert not (form.out / "train_config.json").exists(), "an invalid value was saved"
    assert not (form.out / "export_config.json").exists()


@pytest.mark.parametrize("example", EXAMPLES)
def test_example_form(browser, tmp_path: Path, example: str) -> None:
    arch = EXAMPLES_DIR / example
    schema = workspace.load_schema(arch)
    expected = initial.initial_values(schema)
    export_expected = initial.initial_values(initial.export_schema())
    out = tmp_path / "out"
    out.mkdir()
    with harness.open_form(browser, arch, out) as form:
        for key in schema["properties"]:
            assert field_ids(form, key), f"no field for {key!r}"
        state = form.rjsf_state()
        assert state["train"] == expected
        assert state["export"] == export_expected
        assert form.page.input_value("#root_epochs") == str(expected["epochs"])
        check_screenshot(form, tmp_path / f"{arch.name}.png")

        check_invalid_not_saved(form, "#root_epochs", "0", "should be >= 1")
        form.page.fill("#root_epochs", "3")
        form.page.fill("#root_batch-size", "8")
        outcome = form.save()
        assert outcome["ok"] is True, outcome
        assert form.saved() == {**expected, "epochs": 3, "batch-size": 8}
        assert form.saved("export_config.json") == export_expected
        assert form.errors == []


def test_constructs_form(browser, tmp_path: Path) -> None:
    arch = harness.write_arch(tmp_path / "arch", CONSTRUCTS, "Constructs")
    expected = initial.initial_values(CONSTRUCTS)
    # The platform's initial values for this schema, spelled out (JSONSchemaDefault's rules).
    assert expected == {
        "optimizer": "adam",
        "augment": True,
        "epochs": 1,
        "lr-milestones": [0.5, 0.75],
        "schedule": {"warmup": 2, "gamma": 0.1},
        "beta1": 0.9,
    }
    out = tmp_path / "out"
    out.mkdir()
    with harness.open_form(browser, arch, out) as form:
        for key in (*CONSTRUCTS["properties"], "beta1"):
            assert field_ids(form, key), f"no field for {key!r}"
        assert field_ids(form, "momentum") == [], "the inactive if/then branch is rendered"
        assert set(field_ids(form, "schedule")) >= {"root_schedule_warmup", "root_schedule_gamma"}
        assert form.rjsf_state()["train"] == expected
        assert form.page.is_checked("#root_augment")
        check_screenshot(form, tmp_path / "Constructs.png")

        check_invalid_not_saved(form, "#root_epochs", "0", "should be >= 1")
        form.page.fill("#root_epochs", "5")
        form.page.click("#root_augment")
        form.page.fill("#root_schedule_warmup", "4")
        form.page.fill("#root_lr-milestones_0", "0.25")
        form.page.click("#root_optimizer")
        form.page.click('li[data-value="sgd"]')
        form.page.wait_for_selector("#root_momentum")
        outcome = form.save()
        assert outcome["ok"] is True, outcome
        # liveOmit dropped the adam branch's beta1; the sgd branch's momentum got its default.
        assert form.saved() == {
            "optimizer": "sgd",
            "augment": False,
            "epochs": 5,
            "lr-milestones": [0.25, 0.75],
            "schedule": {"warmup": 4, "gamma": 0.1},
            "momentum": 0.9,
        }
        assert form.errors == []


def test_export_form_edit_saved(browser, tmp_path: Path) -> None:
    """The export form beside the train form: an edit lands in export_config.json."""
    arch = EXAMPLES_DIR / EXAMPLES[0]
    with harness.open_form(browser, arch, tmp_path) as form:
        form.page.fill("#export_opset_version", "17")
        form.page.fill("#export_input_shapes_0_2", "64")
        form.page.fill("#export_input_shapes_0_3", "64")
        outcome = form.save()
        assert outcome["ok"] is True, outcome
        saved = json.loads((tmp_path / "export_config.json").read_text())
        assert saved["opset_version"] == 17
        assert saved["input_shapes"] == [[1, 3, 64, 64]]
        assert saved["model_type"] == "pytorch"
