"""`trainkit validate`'s checks of what the platform's own code does with a template: its file
look-ups by substring (siblings in a templates tree, its stock templates), the form's initial
values (the backend's JSONSchemaDefault), the score line after the stock entrypoint's output,
the COPY targets its config edit uses; and no false claims (custom.json is in the context)."""

from __future__ import annotations

import json
import shutil

from tests.support.template_tree import (
    ARCH,
    TOP,
    architecture_files,
    valid_files,
    write_files,
    write_source_tree,
    write_zip,
)
from trainkit.validation import validate_path

SCHEMA = f"{TOP}/{ARCH}/config/config.jsonschema"


def findings(report, level: str, text: str) -> list[str]:
    return [str(f) for f in report.findings if f.level == level and text in f.message]


def test_the_example_tree_is_clean(tmp_path):
    report = validate_path(write_zip(tmp_path / "t.zip", valid_files()))
    assert report.ok and report.warnings == [], report.lines()


def test_a_name_inside_a_siblings_name_is_an_error(tmp_path):
    source = write_source_tree(tmp_path)  # Acme/Classification/TinyNet
    net = source.templates / "Acme" / "Classification" / "Net"
    write_files(net, architecture_files())
    report = validate_path(net)
    errors = findings(report, "ERROR", "the platform cannot build this architecture")
    assert errors and "Acme/Classification/TinyNet/docker/Dockerfile" in errors[0]
    assert errors[0].startswith("ERROR Acme/Classification/Net/docker/Dockerfile: ")
    # and from the other side: TinyNet's files are what break Net
    report = validate_path(source.arch)
    assert findings(report, "ERROR", "the platform cannot build sibling Acme/Classification/Net")
    shutil.rmtree(net)
    assert validate_path(source.arch).ok


def test_names_against_the_platforms_stock_templates(tmp_path):
    files = {
        k.replace("Acme/Classification/TinyNet", "Ultralytics/Object Detection/YOLO"): v
        for k, v in valid_files().items()
    }
    report = validate_path(write_zip(tmp_path / "t.zip", files))
    assert findings(report, "ERROR", "Ultralytics/Object Detection/YOLOv5/docker/Dockerfile")


def test_a_name_inside_its_own_category_warns(tmp_path):
    files = {k.replace("/TinyNet/", "/Class/"): v for k, v in valid_files().items()}
    report = validate_path(write_zip(tmp_path / "t.zip", files))
    assert findings(report, "WARNING", "architecture name 'Class' is part of the path")
    assert report.ok


def test_a_config_file_above_config_is_taken_as_the_schema(tmp_path):
    files = valid_files() | {f"{ARCH}/config.yaml": b"a: 1\n"}
    report = validate_path(write_zip(tmp_path / "t.zip", files))
    (error,) = findings(report, "ERROR", "as the form schema")
    assert error.startswith(f"ERROR {TOP}/{ARCH}/config.yaml: the platform takes ")
    assert "400 'Unsupported config file extension'" in error
    assert findings(report, "WARNING", "shows it as architecture 'Classification'")


def test_initial_values_the_schema_rejects_are_an_error(tmp_path):
    files = valid_files()
    schema = json.loads(files[f"{ARCH}/config/config.jsonschema"])
    # no default: JSONSchemaDefault starts at the minimum, which exclusiveMinimum rejects
    schema["properties"]["dropout"] = {"type": "number", "minimum": 0, "exclusiveMinimum": 0}
    files[f"{ARCH}/config/config.jsonschema"] = json.dumps(schema).encode()
    report = validate_path(write_zip(tmp_path / "t.zip", files))
    (error,) = findings(report, "ERROR", "the platform's form starts with dropout = 0")
    assert "does not submit until the user changes it" in error


def test_a_type_list_without_default_breaks_the_form(tmp_path):
    files = valid_files()
    schema = json.loads(files[f"{ARCH}/config/config.jsonschema"])
    schema["properties"]["size"] = {"type": ["integer", "string"]}
    files[f"{ARCH}/config/config.jsonschema"] = json.dumps(schema).encode()
    report = validate_path(write_zip(tmp_path / "t.zip", files))
    (error,) = findings(report, "ERROR", "the platform cannot compute its form's initial values")
    assert "TypeError: unhashable type: 'list'" in error and "at size" in error


def test_a_score_regexp_that_reads_the_time_report(tmp_path):
    files = valid_files()
    custom = json.loads(files[f"{ARCH}/config/custom.json"])
    custom["score_regexp"] = r"(\d+\.\d+)"
    files[f"{ARCH}/config/custom.json"] = json.dumps(custom).encode()
    report = validate_path(write_zip(tmp_path / "t.zip", files))
    (error,) = findings(report, "ERROR", "does not extract 0.875")
    assert "bash's `time` report" in error and "got 2.345" in error


def test_export_config_copied_elsewhere_than_train_config_warns(tmp_path):
    files = valid_files()
    dockerfile = files[f"{ARCH}/docker/Dockerfile"].decode()
    dockerfile = dockerfile.replace(
        " export_config.json train_config.json ./", " train_config.json ./"
    )
    files[f"{ARCH}/docker/Dockerfile"] = (dockerfile + "COPY export_config.json /etc/\n").encode()
    report = validate_path(write_zip(tmp_path / "t.zip", files))
    (warning,) = findings(report, "WARNING", "config edit of a built container")
    assert "/workspace/export_config.json" in warning and "/etc/export_config.json" in warning


def test_no_false_claim_about_custom_json(tmp_path):
    report = validate_path(write_zip(tmp_path / "t.zip", valid_files()))
    assert not [f for f in report.findings if "custom.json" in f.message], report.lines()
