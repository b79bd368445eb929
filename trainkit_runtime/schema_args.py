"""One source of truth for train.py's command line: the form's JSON schema.

The platform renders ``config.jsonschema`` as a web form, stores the values as
``train_config.json`` and turns them into train.py's argv. This module does both halves of that
round trip so a ``train.py`` never hand-writes flags that can drift from the schema:

* :func:`config_to_argv` — config → ``list[str]`` (no shell involved; scalars as ``--key=value``
  so values that start with ``-`` are never mistaken for flags);
* :func:`build_parser` / :func:`parse_train_args` — schema (or, where the platform does not ship
  the schema, the JSON types of ``train_config.json``) → ``argparse`` parser;
* :func:`namespace_to_config` — parsed namespace → config keys again.

The parser also accepts the platform's stock ``config_to_args.py`` line (``--key value``, bare
``--flag`` for true and nothing for false, ``--list a b c``), because a template must run on the
platform's own runtime too. Plain stdlib, no side effects on import: it is copied next to every
generated ``train.py``.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from trainkit_runtime import bounded_json

__all__ = [
    "RESERVED_KEYS",
    "SchemaArgsError",
    "build_parser",
    "config_to_argv",
    "load_json_file",
    "load_schema",
    "namespace_to_config",
    "parse_train_args",
    "schema_defaults",
]

# The platform consumes these in setup (dataset split) and never passes them to train.py.
RESERVED_KEYS = frozenset({"train-split", "test-split"})
SCHEMA_FILENAME = "config.jsonschema"
CONFIG_FILENAME = "train_config.json"

# A key becomes ``--key``: it must not be empty, start with "-" or hold "=" or whitespace, or
# argparse would split or misread it.
_KEY_RE = re.compile(r"^\w[\w.+-]*$")
# A NUL byte cannot be part of an argv string (execve), so it is a safe stand-in for a value that
# is exactly "--", which argparse (<= 3.13) otherwise silently drops from explicit arguments.
_DASHDASH = "\0--"
# Bounds on train.py's argv, checked before anything is executed. Linux refuses one argument over
# MAX_ARG_STRLEN (128 KiB) and argv + environment over ARG_MAX (2 MiB with an 8 MiB stack) with
# "Argument list too long"; these limits stay well inside both, whatever the environment holds.
MAX_ARG_BYTES = 64 * 1024
MAX_ARGV_BYTES = 512 * 1024


class SchemaArgsError(ValueError):
    """A schema or config that cannot be turned into arguments; the message names the culprit."""


class _Spec(NamedTuple):
    """How one config key travels through argv: its kind, item kind, enum and default.

    A NamedTuple, not a dataclass: validators load this file by path without registering it in
    sys.modules, which dataclasses (with postponed annotations) cannot cope with.
    """

    key: str
    # boolean, integer, number, numeric (int unless the text has a fraction), string, json, array
    kind: str
    item: str = "string"  # kind of array items (any kind but array)
    enum: tuple[Any, ...] | None = None
    default: Any = None
    help: str | None = None

    @property
    def dest(self) -> str:
        return self.key.replace("-", "_")


# ---------------------------------------------------------------------------------------------
# Reading files


def load_json_file(path: str | Path) -> Any:
    """Read a JSON file; any problem becomes one :class:`SchemaArgsError` line naming the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SchemaArgsError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SchemaArgsError(f"{path}: cannot read: {exc}") from None
    try:
        return bounded_json.loads(text, str(path), strict=False)
    except bounded_json.JsonLimitError as exc:
        raise SchemaArgsError(str(exc)) from None


def _load_object(path: str | Path) -> dict[str, Any]:
    data = load_json_file(path)
    if not isinstance(data, dict):
        raise SchemaArgsError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def load_schema(path: str | Path) -> dict[str, Any]:
    """Load ``config.jsonschema``; it must be an object whose ``properties`` is an object."""
    schema = _load_object(path)
    if not isinstance(schema.get("properties", {}), dict):
        raise SchemaArgsError(f"{path}: 'properties' must be an object")
    return schema


# ---------------------------------------------------------------------------------------------
# Schema → specs


def _schema_type(prop: Mapping[str, Any]) -> str | None:
    """The property's JSON type, ignoring "null" in a type list (nullable fields are common)."""
    types = prop.get("type")
    if isinstance(types, list):
        types = next((t for t in types if t != "null"), None)
    return types if isinstance(types, str) else None


def _default_for_type(json_type: str | None) -> Any:
    return {
        "boolean": False,
        "integer": 0,
        "number": 0.0,
        "string": "",
        "array": [],
        "object": {},
    }.get(json_type or "")


def _property_default(prop: Mapping[str, Any]) -> Any:
    if "default" in prop:
        return copy.deepcopy(prop["default"])
    if isinstance(prop.get("enum"), list) and prop["enum"]:
        return copy.deepcopy(prop["enum"][0])
    return _default_for_type(_schema_type(prop))


def schema_defaults(schema: Mapping[str, Any]) -> dict[str, Any]:
    """The values the platform's form starts with: ``default``, else first ``enum``, else a
    per-type empty value (false, 0, 0.0, "", [], {})."""
    props = schema.get("properties") or {}
    return {key: _property_default(prop) for key, prop in props.items() if isinstance(prop, dict)}


def _kind_of_value(value: Any) -> str:
    """Kind inferred from a JSON value (used when there is no schema for a key)."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "numeric"  # an int in the form may be a number field: accept "0.5" later too
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "json"  # objects, and null (unknown: parsed as JSON if it is JSON, else kept as text)


def _item_kind_of_values(values: Sequence[Any]) -> str:
    kinds = {_kind_of_value(v) for v in values}
    if not kinds:
        return "string"
    if kinds <= {"numeric", "number"}:
        return "number" if "number" in kinds else "numeric"
    if len(kinds) == 1 and (kind := kinds.pop()) in ("boolean", "string"):
        return kind
    return "json"


_TYPE_TO_KIND = {
    "boolean": "boolean",
    "integer": "integer",
    "number": "number",
    "string": "string",
    "array": "array",
    "object": "json",
}


def _spec_from_property(key: str, prop: Mapping[str, Any], value: Any) -> _Spec:
    json_type = _schema_type(prop)
    kind = _TYPE_TO_KIND.get(json_type or "")
    enum = prop.get("enum")
    enum_t = tuple(v for v in enum if v is not None) if isinstance(enum, list) else None
    if kind is None:  # no usable "type": infer from enum, default or the config value
        sample = enum_t[0] if enum_t else prop.get("default", value)
        kind = _kind_of_value(sample) if sample is not None else "json"
    item = "string"
    if kind == "array":
        items = prop.get("items") if isinstance(prop.get("items"), dict) else {}
        item_type = _schema_type(items)
        if item_type in ("boolean", "integer", "number", "string"):
            item = _TYPE_TO_KIND[item_type]
        elif item_type is not None:  # arrays of objects/arrays travel as JSON text
            item = "json"
        else:
            sample = items.get("enum") or prop.get("default") or value
            item = _item_kind_of_values(sample) if isinstance(sample, list) else "string"
        enum_t = tuple(items["enum"]) if isinstance(items.get("enum"), list) else None
    default = False if kind == "boolean" else _property_default(prop)
    help_text = prop.get("description") or prop.get("title")
    return _Spec(key, kind, item, enum_t or None, default, help_text)


# Defaults of keys typed from their value: what the platform's line omits stands for false, "" or
# [] (it skips those), and for null otherwise.
_INFERRED_DEFAULTS = {"boolean": False, "string": "", "array": []}


def _spec_from_value(key: str, value: Any) -> _Spec:
    kind = _kind_of_value(value)
    item = _item_kind_of_values(value) if kind == "array" else "string"
    return _Spec(key, kind, item, None, copy.deepcopy(_INFERRED_DEFAULTS.get(kind)), None)


def _check_key(key: Any) -> str:
    if not isinstance(key, str) or not _KEY_RE.match(key):
        raise SchemaArgsError(
            f"config key {key!r} cannot become a command-line flag "
            "(use letters, digits, '_', '-', '.'; no leading '-', no spaces or '=')"
        )
    return key


def _specs(schema: Mapping[str, Any] | None, config: Mapping[str, Any] | None) -> dict[str, _Spec]:
    """Specs for the schema's properties, then for keys that only the config has."""
    props = (schema or {}).get("properties") or {}
    config = config or {}
    specs: dict[str, _Spec] = {}
    for key, prop in props.items():
        if key in RESERVED_KEYS:
            continue
        prop = prop if isinstance(prop, dict) else {}
        specs[_check_key(key)] = _spec_from_property(key, prop, config.get(key))
    for key, value in config.items():
        if key not in RESERVED_KEYS and key not in specs:
            specs[_check_key(key)] = _spec_from_value(key, value)
    seen: dict[str, str] = {}
    for spec in specs.values():
        if (other := seen.setdefault(spec.dest, spec.key)) != spec.key:
            raise SchemaArgsError(
                f"config keys {other!r} and {spec.key!r} both map to argument '{spec.dest}'"
            )
    return specs


# ---------------------------------------------------------------------------------------------
# Values → text (config_to_argv) and text → values (the parser)


def _format_scalar(value: Any, kind: str) -> str:
    """The argv text for one scalar, chosen so the matching converter returns the same value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if kind == "integer" and isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def _parse_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        pass
    number = float(text)  # the stock platform line prints an integral float as "3.0"
    if not number.is_integer():
        raise ValueError(f"expected an integer, got {text!r}")
    return int(number)


def _parse_numeric(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        return float(text)


def _parse_json(text: str) -> Any:
    try:
        return bounded_json.loads(text, strict=False)
    except bounded_json.JsonSyntaxError:
        return text


_CONVERTERS = {
    "boolean": _parse_bool,
    "integer": _parse_int,
    "number": float,
    "numeric": _parse_numeric,
    "string": str,
    "json": _parse_json,
}


def _convert(spec: _Spec, kind: str, text: str) -> Any:
    text = "--" if text == _DASHDASH else text
    if spec.enum is not None:
        # The enum's own rendering, and Python's str() as the platform's stock line prints it.
        table = {_format_scalar(v, kind): v for v in spec.enum}
        table.update({str(v): v for v in spec.enum if str(v) not in table})
        if text in table:
            return table[text]
        choices = ", ".join(_format_scalar(v, kind) for v in spec.enum)
        raise ValueError(f"invalid choice {text!r} (choose from {choices})")
    try:
        value = _CONVERTERS[kind](text)
    except ValueError as exc:
        raise ValueError(f"invalid {kind} value {text!r}") from exc
    if isinstance(value, float) and not math.isfinite(value) and kind != "json":
        raise ValueError(f"invalid {kind} value {text!r} (not finite)")
    return value


class _SchemaAction(argparse.Action):
    """Converts raw strings by the key's spec (argparse's ``type=`` cannot join or negate)."""

    def __init__(self, option_strings: list[str], dest: str, spec: _Spec, **kwargs: Any):
        self.spec = spec
        super().__init__(option_strings, dest, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        spec = self.spec
        try:
            if spec.kind == "boolean":
                value = True if values is None else _convert(spec, "boolean", values)
                if option_string == f"--no-{spec.key}":
                    value = not value
            elif spec.kind == "array":
                items = [_convert(spec, spec.item, v) for v in values]
                current = getattr(namespace, self.dest, None)
                # First occurrence replaces the default; repeated --key=v occurrences extend.
                value = items if current is self.default or current is None else current + items
            elif spec.kind == "string":
                # The stock platform line is eval'ed unquoted: "a b" arrives as two words.
                value = _convert(spec, "string", " ".join(values))
            else:
                value = _convert(spec, spec.kind, values)
        except ValueError as exc:
            raise argparse.ArgumentError(self, str(exc)) from None
        setattr(namespace, self.dest, value)


class SchemaArgumentParser(argparse.ArgumentParser):
    """ArgumentParser that keeps the spec of every flag, for :func:`namespace_to_config`."""

    def __init__(self, *args: Any, specs: Mapping[str, _Spec] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.specs: dict[str, _Spec] = dict(specs or {})

    def _get_values(self, action: argparse.Action, arg_strings: list[str]) -> Any:
        # argparse removes a literal "--" even from "--key=--"; keep such values verbatim.
        if isinstance(action, _SchemaAction):
            arg_strings = [_DASHDASH if s == "--" else s for s in arg_strings]
        return super()._get_values(action, arg_strings)

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        ns, rest = super().parse_known_args(args, namespace)
        # argparse hands out the action's default object itself; a caller appending to a list
        # default would change the next parse's default.
        for action in self._actions:
            value = getattr(ns, action.dest, None)
            if value is action.default and isinstance(value, (list, dict)):
                setattr(ns, action.dest, copy.deepcopy(value))
        return ns, rest


def _add_argument(parser: argparse.ArgumentParser, spec: _Spec, taken: set[str]) -> None:
    flag = f"--{spec.key}"
    help_text = spec.help or ""
    if spec.enum is not None:
        help_text += " (one of: " + ", ".join(_format_scalar(v, spec.kind) for v in spec.enum)
        help_text += ")"
    kwargs: dict[str, Any] = {"dest": spec.dest, "default": copy.deepcopy(spec.default)}
    if spec.kind == "boolean":
        flags = [flag]
        if (negated := f"--no-{spec.key}") not in taken:
            flags.append(negated)
        parser.add_argument(
            *flags,
            action=_SchemaAction,
            spec=spec,
            nargs="?",
            help=help_text.replace("%", "%%"),
            metavar="true|false",
            **kwargs,
        )
        return
    nargs = {"array": "*", "string": "+"}.get(spec.kind)
    help_text += f" (default: {spec.default!r})"
    parser.add_argument(
        flag,
        action=_SchemaAction,
        spec=spec,
        nargs=nargs,
        help=help_text.replace("%", "%%"),  # argparse %-formats help texts
        metavar="VALUE",
        **kwargs,
    )


def build_parser(
    schema: Mapping[str, Any] | None = None,
    config: Mapping[str, Any] | None = None,
    description: str | None = None,
) -> SchemaArgumentParser:
    """An argparse parser with one flag per schema property plus config-only keys (inferred).

    Defaults come from the schema (booleans default to false: the platform omits false flags).
    Keys only in ``config`` (presets/custom merged by ``finalize_config``, or everything when the
    platform shipped no schema) get flags typed by their JSON values; their defaults are what
    an omitted flag stands for in the platform's line: false, ``""``, ``[]``, else ``None``.
    """
    specs = _specs(schema, config)
    parser = SchemaArgumentParser(
        description=description or (schema or {}).get("description"),
        allow_abbrev=False,  # "--lr" must never silently mean "--lr-scheduler"
        add_help=False,
        specs=specs,
    )
    taken = {f"--{key}" for key in specs}
    help_flags = [f for f in ("-h", "--help") if f not in taken]
    if help_flags:
        parser.add_argument(*help_flags, action="help", help="show this help message and exit")
    for spec in specs.values():
        _add_argument(parser, spec, taken)
    return parser


# ---------------------------------------------------------------------------------------------
# Config → argv, namespace → config


def _argv_for(spec: _Spec, value: Any) -> list[str]:
    flag = f"--{spec.key}"
    if spec.kind == "boolean":
        if not isinstance(value, bool):
            raise SchemaArgsError(
                f"config key {spec.key!r}: expected true/false, got {_short(value)}"
            )
        return [flag] if value else []
    if spec.kind == "array":
        if not isinstance(value, list):
            raise SchemaArgsError(f"config key {spec.key!r}: expected a list, got {_short(value)}")
        texts = [_format_scalar(v, spec.item) for v in value]
        if any(t.startswith("-") for t in texts):
            return [f"{flag}={t}" for t in texts]  # "-x" after "--key" would read as a flag
        return [flag, *texts]
    if isinstance(value, (list, bool)) and spec.kind not in ("json",) and spec.enum is None:
        raise SchemaArgsError(
            f"config key {spec.key!r}: value {_short(value)} does not fit schema type {spec.kind}"
        )
    return [f"{flag}={_format_scalar(value, spec.kind)}"]


def config_to_argv(config: Mapping[str, Any], schema: Mapping[str, Any] | None = None) -> list[str]:
    """train.py's argv for ``config``: list form, no shell; null and split keys are skipped.

    Scalars use ``--key=value`` (so ``-5``, ``-1e-05`` or ``--x`` stay values), booleans a bare
    ``--key`` when true and nothing when false, arrays ``--key v1 v2`` (or ``--key=v`` per item
    when an item starts with ``-``), an empty string ``--key=`` (passed, unlike the platform).
    """
    specs = _specs(schema, config)
    argv: list[str] = []
    total = 0
    for key, value in config.items():
        if key in RESERVED_KEYS or value is None:
            continue
        for arg in _argv_for(specs[key], value):
            if "\0" in arg:
                raise SchemaArgsError(f"config key {key!r}: a NUL character cannot be passed")
            try:
                size = len(arg.encode("utf-8")) + 1
            except UnicodeEncodeError:  # JSON allows lone surrogates ("\ud800"); argv cannot
                raise SchemaArgsError(
                    f"config key {key!r}: value {_short(value)} is not valid Unicode"
                ) from None
            total += size
            if size > MAX_ARG_BYTES:
                raise SchemaArgsError(
                    f"config key {key!r}: its argument is {size} bytes, more than the limit "
                    f"{MAX_ARG_BYTES} for one argument of train.py"
                )
            if total > MAX_ARGV_BYTES:
                raise SchemaArgsError(
                    f"config key {key!r}: train.py's arguments reach {total} bytes, more than "
                    f"the limit {MAX_ARGV_BYTES}"
                )
            argv.append(arg)
    return argv


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:80] + "..."


def namespace_to_config(
    ns: argparse.Namespace,
    schema: Mapping[str, Any] | None = None,
    config: Mapping[str, Any] | None = None,
    parser: SchemaArgumentParser | None = None,
) -> dict[str, Any]:
    """Map a parsed namespace back to config keys (``batch_size`` → ``batch-size``)."""
    specs = parser.specs if parser is not None else _specs(schema, config)
    values = vars(ns)
    return {key: values[spec.dest] for key, spec in specs.items() if spec.dest in values}


def parse_train_args(
    argv: Sequence[str] | None = None,
    workdir: str | Path = ".",
    description: str | None = None,
) -> argparse.Namespace:
    """What a generated train.py calls: parse argv by ``config.jsonschema`` when the image has
    it, else by the value types in ``train_config.json`` (the platform ships no schema)."""
    workdir = Path(workdir)
    schema_path = workdir / SCHEMA_FILENAME
    config_path = workdir / CONFIG_FILENAME
    schema = load_schema(schema_path) if schema_path.is_file() else None
    config = _load_object(config_path) if config_path.is_file() else None
    parser = build_parser(schema, config, description=description)
    return parser.parse_args(list(argv) if argv is not None else None)
