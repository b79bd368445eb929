"""common/schema_args.py: schema → argparse, config → argv, and the round trip between them."""

from __future__ import annotations

import json
import math
import shlex
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.platform_stock import stock_config_to_args_line, stock_entrypoint_argv
from trainkit_runtime import schema_args as sa

SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "properties": {
        "epochs": {"type": "integer", "default": 50, "description": "Epochs to train."},
        "learning-rate": {"type": "number", "default": 0.001},
        "optimizer": {"type": "string", "enum": ["AdamW", "SGD"]},
        "augment": {"type": "boolean", "default": True},
        "img-size": {"type": "array", "items": {"type": "integer"}, "default": [32, 32]},
        "classes": {"type": "array", "items": {"type": "string"}},
        "run-name": {"type": "string"},
        "ratio": {"type": ["number", "null"]},
        "train-split": {"type": "number", "default": 0.8},
        "test-split": {"type": "number", "default": 0.2},
    },
}

HOSTILE = [
    "; rm -rf /",
    "$(touch pwned)",
    "`touch pwned`",
    "a'b\"c",
    "two  spaces",
    "line\nbreak\ttab",
    "-starts-with-dash",
    "--",
    "--epochs=9",
    "-5",
    "",
    "ünïcødé ✓ 日本",
    "x=y",
    "\\backslash\\",
    "%(prog)s %d",
]


def roundtrip(config: dict[str, Any], schema: dict[str, Any] | None) -> dict[str, Any]:
    argv = sa.config_to_argv(config, schema)
    parser = sa.build_parser(schema, config)
    return sa.namespace_to_config(parser.parse_args(argv), parser=parser)


# --- defaults --------------------------------------------------------------------------------


def test_schema_defaults_default_then_first_enum_then_type() -> None:
    schema = {
        "properties": {
            "a": {"type": "integer", "default": 7},
            "b": {"type": "string", "enum": ["x", "y"]},
            "c": {"type": "boolean"},
            "d": {"type": "number"},
            "e": {"type": "array", "items": {"type": "string"}},
            "f": {"type": "string"},
            "g": {"type": ["integer", "null"]},
        }
    }
    assert sa.schema_defaults(schema) == {
        "a": 7,
        "b": "x",
        "c": False,
        "d": 0.0,
        "e": [],
        "f": "",
        "g": 0,
    }


def test_parser_defaults_come_from_the_schema_but_booleans_default_false() -> None:
    ns = sa.build_parser(SCHEMA).parse_args([])
    assert ns.epochs == 50
    assert ns.learning_rate == 0.001
    assert ns.optimizer == "AdamW"
    assert ns.img_size == [32, 32]
    assert ns.augment is False  # the platform omits false flags: absence must mean false
    assert not hasattr(ns, "train_split")
    assert not hasattr(ns, "test_split")


def test_list_defaults_are_not_shared_between_parses() -> None:
    parser = sa.build_parser(SCHEMA)
    first = parser.parse_args([])
    first.img_size.append(99)
    assert parser.parse_args([]).img_size == [32, 32]
    assert parser.parse_args(["--img-size=1", "--img-size=2"]).img_size == [1, 2]


# --- config → argv ---------------------------------------------------------------------------


def test_config_to_argv_forms() -> None:
    config = {
        "epochs": 3,
        "learning-rate": -1e-05,
        "optimizer": "SGD",
        "augment": False,
        "img-size": [64, 48],
        "classes": ["-neg", "b"],
        "run-name": "a b",
        "ratio": None,
        "train-split": 0.7,
        "test-split": 0.3,
        "images-dir": "/datasets/images",
        "resume": True,
    }
    assert sa.config_to_argv(config, SCHEMA) == [
        "--epochs=3",
        "--learning-rate=-1e-05",
        "--optimizer=SGD",
        "--img-size",
        "64",
        "48",
        "--classes=-neg",
        "--classes=b",
        "--run-name=a b",
        "--images-dir=/datasets/images",
        "--resume",
    ]


def test_integral_float_for_integer_field_is_passed_as_integer() -> None:
    schema = {"properties": {"n": {"type": "integer"}}}
    assert sa.config_to_argv({"n": 3.0}, schema) == ["--n=3"]


def test_type_mismatch_is_a_clear_error() -> None:
    with pytest.raises(sa.SchemaArgsError, match="'augment': expected true/false, got 'yes'"):
        sa.config_to_argv({"augment": "yes"}, SCHEMA)
    with pytest.raises(sa.SchemaArgsError, match="'img-size': expected a list"):
        sa.config_to_argv({"img-size": 3}, SCHEMA)


def test_nul_in_a_value_cannot_be_passed() -> None:
    with pytest.raises(sa.SchemaArgsError, match="'run-name': a NUL character"):
        sa.config_to_argv({"run-name": "a\0b"}, SCHEMA)


def test_lone_surrogate_cannot_be_passed() -> None:
    config = json.loads('{"run-name": "a\\ud800b"}')
    with pytest.raises(sa.SchemaArgsError, match=r"'run-name': value .* is not valid Unicode"):
        sa.config_to_argv(config, SCHEMA)


@pytest.mark.parametrize("key", ["", "-x", "a b", "a=b", 3])
def test_keys_that_cannot_be_flags_are_rejected(key: Any) -> None:
    with pytest.raises(sa.SchemaArgsError, match="cannot become a command-line flag"):
        sa.config_to_argv({key: 1})


def test_keys_that_collide_as_dest_are_rejected() -> None:
    with pytest.raises(sa.SchemaArgsError, match="'batch-size' and 'batch_size'"):
        sa.build_parser(None, {"batch-size": 1, "batch_size": 2})


# --- parser ----------------------------------------------------------------------------------


def test_booleans_bare_absent_negated_and_explicit() -> None:
    parser = sa.build_parser(SCHEMA)
    assert parser.parse_args(["--augment"]).augment is True
    assert parser.parse_args([]).augment is False
    assert parser.parse_args(["--augment", "--no-augment"]).augment is False
    assert parser.parse_args(["--augment=false"]).augment is False
    assert parser.parse_args(["--augment", "true"]).augment is True


def test_enum_rejects_values_outside_the_schema(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        sa.build_parser(SCHEMA).parse_args(["--optimizer=Adam"])
    assert info.value.code == 2
    assert "invalid choice 'Adam' (choose from AdamW, SGD)" in capsys.readouterr().err


def test_typed_values_reject_garbage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        sa.build_parser(SCHEMA).parse_args(["--epochs=2.5"])
    assert "--epochs" in capsys.readouterr().err


def test_no_prefix_abbreviations() -> None:
    parser = sa.build_parser(None, {"lr": 0.1, "lr-scheduler": "step"})
    with pytest.raises(SystemExit):
        parser.parse_args(["--lr-sch", "x"])


def test_hostile_strings_survive_verbatim() -> None:
    for value in HOSTILE:
        config = {"run-name": value, "classes": [value, "x"]}
        assert roundtrip(config, SCHEMA) == {**roundtrip({}, SCHEMA), **config}, value


def test_key_named_help_keeps_its_flag() -> None:
    parser = sa.build_parser(None, {"help": "text"})
    assert parser.parse_args(["--help=me"]).help == "me"


def test_help_text_with_percent_renders() -> None:
    schema = {"properties": {"p": {"type": "integer", "description": "in % of x"}}}
    assert "in % of x" in sa.build_parser(schema).format_help()


def test_inference_without_schema_keeps_json_types() -> None:
    config = {
        "epochs": 3,
        "lr": 0.5,
        "flag": True,
        "off": False,
        "name": "x y",
        "sizes": [1, 2],
        "mix": [1, 2.5],
        "tags": ["a", "-b"],
        "empty": [],
        "nothing": None,
        "obj": {"a": [1]},
    }
    assert roundtrip(config, None) == config
    # An int-valued field may be a number field: a user may pass 0.5 by hand.
    assert sa.build_parser(None, config).parse_args(["--epochs=0.5"]).epochs == 0.5


def test_inferred_defaults_match_what_the_platform_line_omits() -> None:
    config = {"flag": False, "name": "", "tags": [], "lr": None, "n": 3}
    parser = sa.build_parser(None, config)
    ns = parser.parse_args(platform_argv(config))
    assert sa.namespace_to_config(ns, parser=parser) == config
    ns.tags.append("x")  # defaults are not shared between parses
    assert parser.parse_args([]).tags == []


def test_schema_less_keys_in_config_get_inferred_flags() -> None:
    config = {"epochs": 2, "images-dir": "/datasets/images", "model_filepath": "/o/m.pt"}
    out = roundtrip(config, SCHEMA)
    assert out["images-dir"] == "/datasets/images"
    assert out["model_filepath"] == "/o/m.pt"
    assert out["epochs"] == 2


def test_parse_train_args_uses_schema_when_present(tmp_path: Path) -> None:
    (tmp_path / "config.jsonschema").write_text(json.dumps(SCHEMA))
    (tmp_path / "train_config.json").write_text(json.dumps({"epochs": 1, "extra": "e"}))
    ns = sa.parse_train_args(["--epochs=4", "--extra=z"], workdir=tmp_path)
    assert (ns.epochs, ns.extra, ns.optimizer) == (4, "z", "AdamW")


def test_parse_train_args_infers_from_train_config_without_schema(tmp_path: Path) -> None:
    config = {"epochs": 1, "augment": True, "classes": ["a"], "train-split": 0.8}
    (tmp_path / "train_config.json").write_text(json.dumps(config))
    argv = sa.config_to_argv(config)
    ns = sa.parse_train_args(argv, workdir=tmp_path)
    assert (ns.epochs, ns.augment, ns.classes) == (1, True, ["a"])
    assert not hasattr(ns, "train_split")


def test_parse_train_args_invalid_json_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "train_config.json").write_text("{oops")
    with pytest.raises(sa.SchemaArgsError, match=r"train_config\.json: invalid JSON at line 1"):
        sa.parse_train_args([], workdir=tmp_path)


# --- the platform's stock config_to_args.py line (the real file, trainkit/platform/backend) ---


def platform_argv(config: dict[str, Any]) -> list[str]:
    """The stock config_to_args.py's line for `config`, word-split as its entrypoint's `eval`
    splits it: for values without shell specials (all these tests use) that is shlex.split;
    test_platform_line_example runs the stock entrypoint's own command to show it."""
    return shlex.split(stock_config_to_args_line(config))


def test_platform_line_example(tmp_path: Path) -> None:
    config = {
        "epochs": 3,
        "learning-rate": 1e-05,
        "optimizer": "SGD",
        "augment": True,
        "img-size": [64, 48],
        "classes": ["cat", "dog"],
        "run-name": "my first run",
        "ratio": -0.5,
        "train-split": 0.8,
        "images-dir": "/datasets/images",
        "flags": [True, False],
    }
    argv = stock_entrypoint_argv(config, tmp_path)
    assert argv == [
        *("--epochs", "3", "--learning-rate", "1e-05", "--optimizer", "SGD", "--augment"),
        *("--img-size", "64", "48", "--classes", "cat", "dog", "--run-name", "my", "first"),
        *("run", "--ratio", "-0.5", "--images-dir", "/datasets/images", "--flags", "True"),
        "False",
    ]
    assert argv == platform_argv(config)
    parser = sa.build_parser(SCHEMA, config)
    out = sa.namespace_to_config(parser.parse_args(argv), parser=parser)
    # A string with spaces arrives split (the platform's limitation, which `trainkit validate`
    # warns about), here re-joined by the parser's nargs; everything else keeps its type.
    assert out == {k: v for k, v in config.items() if k != "train-split"}


SAFE_WORD = st.text("abcxyzABC0189_./", min_size=1, max_size=6).filter(lambda w: w[0] != "-")


@st.composite
def platform_case(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    props: dict[str, Any] = {}
    config: dict[str, Any] = {}
    keys = draw(st.lists(st.from_regex(r"[a-z]{1,6}(-[a-z]{1,3})?", fullmatch=True), unique=True))
    for key in keys:
        kind = draw(st.sampled_from(["boolean", "integer", "number", "string", "ints", "words"]))
        if kind == "boolean":
            props[key], value = {"type": "boolean"}, draw(st.booleans())
        elif kind == "integer":
            props[key], value = {"type": "integer"}, draw(st.integers(-(10**9), 10**9))
        elif kind == "number":
            value = draw(st.floats(min_value=0, max_value=1e12) | st.integers(0, 10**6))
            props[key] = {"type": "number"}
        elif kind == "string":
            value = " ".join(draw(st.lists(SAFE_WORD, min_size=1, max_size=3)))
            props[key] = {"type": "string"}
        elif kind == "ints":
            props[key] = {"type": "array", "items": {"type": "integer"}}
            value = draw(st.lists(st.integers(-1000, 1000), min_size=1))
        else:
            props[key] = {"type": "array", "items": {"type": "string"}}
            value = draw(st.lists(SAFE_WORD, min_size=1))
        config[key] = value
    return {"properties": props}, config


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(platform_case(), st.booleans())
def test_platform_line_parses_to_the_same_values(
    case: tuple[dict[str, Any], dict[str, Any]], with_schema: bool
) -> None:
    schema, config = case
    parser = sa.build_parser(schema if with_schema else None, config)
    out = sa.namespace_to_config(parser.parse_args(platform_argv(config)), parser=parser)
    assert out == config


# --- property: any schema-valid config survives argv → argparse ------------------------------

TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"))
ANY_TEXT = TEXT | st.sampled_from(HOSTILE)
FLOAT = st.floats(allow_nan=False, allow_infinity=False)
KEY = st.from_regex(r"[a-zA-Z][a-zA-Z0-9]{0,5}([-_.][a-z0-9]{1,3})?", fullmatch=True)


@st.composite
def schema_and_config(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    props: dict[str, Any] = {}
    config: dict[str, Any] = {}
    for key in draw(st.lists(KEY, max_size=8, unique_by=lambda k: k.replace("-", "_"))):
        kind = draw(
            st.sampled_from(
                [
                    "boolean",
                    "integer",
                    "number",
                    "string",
                    "enum",
                    "int-enum",
                    "ints",
                    "strs",
                    "nums",
                ]
            )
        )
        prop: dict[str, Any]
        if kind == "boolean":
            prop, value = {"type": "boolean", "default": draw(st.booleans())}, draw(st.booleans())
        elif kind == "integer":
            prop, value = {"type": "integer"}, draw(st.integers())
        elif kind == "number":
            prop, value = {"type": "number"}, draw(FLOAT | st.integers(-(2**53), 2**53))
        elif kind == "string":
            prop, value = {"type": "string", "default": draw(TEXT)}, draw(ANY_TEXT)
        elif kind == "enum":
            choices = draw(st.lists(ANY_TEXT, min_size=1, max_size=4, unique=True))
            prop, value = {"type": "string", "enum": choices}, draw(st.sampled_from(choices))
        elif kind == "int-enum":
            choices = draw(st.lists(st.integers(), min_size=1, max_size=4, unique=True))
            prop, value = {"type": "integer", "enum": choices}, draw(st.sampled_from(choices))
        elif kind == "ints":
            prop = {"type": "array", "items": {"type": "integer"}, "default": [1]}
            value = draw(st.lists(st.integers(), max_size=4))
        elif kind == "strs":
            prop = {"type": "array", "items": {"type": "string"}}
            value = draw(st.lists(ANY_TEXT, max_size=4))
        else:
            prop = {"type": "array", "items": {"type": "number"}}
            value = draw(st.lists(FLOAT, max_size=4))
        props[key] = prop
        if draw(st.booleans()) or kind == "boolean":
            config[key] = value
    # Keys only the config has (presets/custom): inferred from their JSON values.
    extra = st.one_of(
        st.booleans(), st.integers(), FLOAT, ANY_TEXT, st.lists(st.integers()), st.lists(ANY_TEXT)
    )
    for key in draw(st.lists(KEY.map(lambda k: "x-" + k), max_size=3, unique=True)):
        if key.replace("-", "_") not in {k.replace("-", "_") for k in props}:
            config[key] = draw(extra)
    return {"type": "object", "properties": props}, config


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(a, b, rel_tol=0, abs_tol=0) or a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b and type(a) is type(b)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schema_and_config())
def test_any_schema_valid_config_round_trips(case: tuple[dict[str, Any], dict[str, Any]]) -> None:
    schema, config = case
    parser = sa.build_parser(schema, config)
    ns = parser.parse_args(sa.config_to_argv(config, schema))
    out = sa.namespace_to_config(ns, parser=parser)
    for key, value in config.items():
        assert same(out[key], value), (key, value, out[key])
    for key in set(schema["properties"]) - set(config):  # not passed: the schema's default
        expected = False if schema["properties"][key]["type"] == "boolean" else None
        default = sa.schema_defaults(schema)[key]
        assert out[key] == (expected if expected is not None else default)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schema_and_config())
def test_without_schema_values_round_trip_by_their_json_types(
    case: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    """The platform ships no config.jsonschema: train.py infers from train_config.json alone."""
    _, config = case
    parser = sa.build_parser(None, config)
    out = sa.namespace_to_config(parser.parse_args(sa.config_to_argv(config)), parser=parser)
    assert set(out) == set(config)
    for key, value in config.items():
        assert same(out[key], value), (key, value, out[key])
