"""The argv round-trip check: with stand-in schema_args modules that break it on purpose, with
the real trainkit_runtime.schema_args, and the validator's model of the platform's line
against the platform's own config_to_args.py and entrypoint command (tests/support/
platform_stock.py)."""

from __future__ import annotations

import argparse
import json
import shlex
import types

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.platform_stock import stock_config_to_args_line, stock_entrypoint_argv
from tests.support.template_tree import ARCH, TOP, valid_files, write_zip
from trainkit.validation import configs, validate_path

SCHEMA = f"{TOP}/{ARCH}/config/config.jsonschema"


def stub(*, epochs_type=int, drop: str | None = None, bool_flags: bool = True):
    def schema_defaults(schema):
        return {
            k: p.get("default", p.get("enum", [None])[0]) for k, p in schema["properties"].items()
        }

    def config_to_argv(config, schema=None):
        argv = []
        for key, value in config.items():
            if key in ("train-split", "test-split") or value in (None, ""):
                continue
            if isinstance(value, bool):
                argv += [f"--{key}"] if value else []
            else:
                argv += [f"--{key}", str(value)]
        return argv

    def build_parser(schema=None, config=None):
        parser = argparse.ArgumentParser()
        for key, value in {**schema_defaults(schema), **(config or {})}.items():
            if key == drop:
                continue
            if isinstance(value, bool):
                parser.add_argument(f"--{key}", action="store_true" if bool_flags else "store")
            elif isinstance(value, int):
                parser.add_argument(f"--{key}", type=epochs_type)
            elif isinstance(value, float):
                parser.add_argument(f"--{key}", type=float)
            else:
                parser.add_argument(f"--{key}")
        return parser

    return types.SimpleNamespace(
        schema_defaults=schema_defaults, config_to_argv=config_to_argv, build_parser=build_parser
    )


def validate_with(monkeypatch, tmp_path, module, files=None):
    monkeypatch.setattr(configs, "load_schema_args", lambda: module)
    return validate_path(write_zip(tmp_path / "t.zip", files or valid_files()))


def test_consistent_stub_passes(monkeypatch, tmp_path):
    report = validate_with(monkeypatch, tmp_path, stub())
    assert report.ok, report.lines()
    assert report.findings == [], report.lines()


def test_parser_missing_a_flag(monkeypatch, tmp_path):
    report = validate_with(monkeypatch, tmp_path, stub(drop="augment"))
    messages = [f.message for f in report.errors if f.path == SCHEMA]
    assert any("trainkit argv: train.py's parser rejects" in m for m in messages), messages
    assert any("unrecognized arguments: --augment" in m for m in messages), messages


def test_value_changes_type_on_the_way(monkeypatch, tmp_path):
    report = validate_with(monkeypatch, tmp_path, stub(epochs_type=str))
    assert any(
        f.path == SCHEMA and "property 'epochs' = 2 arrives in train.py as '2'" in f.message
        for f in report.errors
    ), report.lines()


def test_preset_value_with_spaces_warns_for_the_platform_line(monkeypatch, tmp_path):
    files = valid_files()
    presets = json.loads(files[f"{ARCH}/config/presets.json"]) | {"run-name": "my run"}
    files[f"{ARCH}/config/presets.json"] = json.dumps(presets).encode()
    report = validate_with(monkeypatch, tmp_path, stub(), files)
    assert any(
        f.level == "WARNING"
        and f.path == f"{TOP}/{ARCH}/config/presets.json"
        and "value of 'run-name' ('my run') has whitespace" in f.message
        for f in report.findings
    ), report.lines()


def test_presets_break_the_schema(monkeypatch, tmp_path):
    files = valid_files()
    files[f"{ARCH}/config/presets.json"] = json.dumps({"epochs": "many"}).encode()
    report = validate_with(monkeypatch, tmp_path, stub(), files)
    assert any(
        f.path == f"{TOP}/{ARCH}/config/presets.json"
        and "form's initial values merged with presets.json are not valid" in f.message
        for f in report.errors
    ), report.lines()


LINE_CASES = [
    (
        {"a": True, "b": False, "c": [1, 2], "d": None, "e": "", "train-split": 0.8},
        ["--a", "--c", "1", "2"],
    ),
    ({"lr": 0.001, "name": "x"}, ["--lr", "0.001", "--name", "x"]),
    (
        {"big": 1e16, "neg": -3, "flags": [True, False], "empty": []},
        ["--big", "1e+16", "--neg", "-3", "--flags", "True", "False"],
    ),
    ({"test-split": 0.2, "zero": 0, "f": 0.0}, ["--zero", "0", "--f", "0.0"]),
]


@pytest.mark.parametrize(("line_config", "expected"), LINE_CASES)
def test_platform_argv_is_what_the_stock_entrypoint_passes(tmp_path, line_config, expected):
    """The validator's model of the platform line against the platform's own files: its
    config_to_args.py under its entrypoint's `eval "time python train.py $(...)"`."""
    assert stock_entrypoint_argv(line_config, tmp_path) == expected
    assert configs.platform_argv(line_config) == expected


SAFE_TEXT = st.text("abcXYZ019_./:-", min_size=1, max_size=8).filter(lambda w: w[0] != "-")
LINE_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=False, allow_infinity=False),
    SAFE_TEXT,
    st.just(""),
    st.lists(st.one_of(st.integers(-99, 99), SAFE_TEXT, st.booleans()), max_size=4),
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.from_regex(r"[a-z][a-z-]{0,8}", fullmatch=True), LINE_VALUE))
def test_platform_argv_matches_the_stock_config_to_args(config):
    """For values without shell specials, the entrypoint's eval splits the stock line into
    words exactly like shlex.split (shown above for fixed cases)."""
    assert configs.platform_argv(config) == shlex.split(stock_config_to_args_line(config))


# --- with the real common/schema_args.py ---------------------------------------------------


def with_properties(tmp_path, props, presets=None):
    files = valid_files()
    schema = json.loads(files[f"{ARCH}/config/config.jsonschema"])
    schema["properties"].update(props)
    files[f"{ARCH}/config/config.jsonschema"] = json.dumps(schema).encode()
    if presets is not None:
        files[f"{ARCH}/config/presets.json"] = json.dumps(presets).encode()
    return validate_path(write_zip(tmp_path / "t.zip", files))


@pytest.mark.parametrize(
    ("props", "presets"),
    [
        ({"sizes": {"type": "array", "items": {"type": "integer"}, "default": [1, 2]}}, None),
        ({"names": {"type": "array", "items": {"type": "string"}, "default": []}}, None),
        ({"neg": {"type": "number", "default": -0.5}}, None),
        ({"maybe": {"type": ["integer", "null"], "default": None}}, None),
        ({}, {"output-dir": "/workspace/output", "flag": True, "tags": ["a", "b"]}),
    ],
)
def test_real_schema_args_round_trips(tmp_path, props, presets):
    assert configs.load_schema_args() is not None
    report = with_properties(tmp_path, props, presets)
    assert report.findings == [], report.lines()


def test_real_schema_args_object_property_breaks_the_platform_line(tmp_path):
    report = with_properties(tmp_path, {"opts": {"type": "object", "default": {"a": 1}}})
    assert any(
        f.path == SCHEMA and f.message.startswith("platform config_to_args.py line:")
        for f in report.errors
    ), report.lines()
