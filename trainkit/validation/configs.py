"""config/ checks: the form schema, its defaults and presets, the argv round trip into
train.py, custom.json (model path and score regexp) and export_config.json."""

from __future__ import annotations

import contextlib
import copy
import io
import re
import shlex
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from jsonschema import Draft7Validator
from jsonschema.exceptions import SchemaError

from trainkit import layout, platform
from trainkit.form.rjsf_findings import form_warnings
from trainkit.platform import score
from trainkit.schema_refs import closed_validator, ref_problems
from trainkit.validation.report import Report
from trainkit_runtime import bounded_json

# Keys the platform's (and our) config_to_args.py never pass to train.py.
RESERVED_KEYS = ("train-split", "test-split")
SCORE_SAMPLE_VALUE = 0.875
# What the platform's stock entrypoint prints after train.py: bash's `time` report, then the
# "Training ended" line (model-training/common/docker-entrypoint.sh).
STOCK_TRAILER = (
    "\nreal\t12m34.567s\nuser\t98m7.654s\nsys\t1m2.345s\nTraining ended: 2026-01-02T03:04:05\n"
)
DRAFT7_URIS = ("http://json-schema.org/draft-07/schema#", "http://json-schema.org/draft-07/schema")
_SHELL_SPECIALS = re.compile(r"[\s'\"`$\\;&|<>(){}*?!#~]")

Rel = Callable[[Path], str]


def load_schema_args() -> ModuleType:
    """The installed runtime's schema_args (never code from the ZIP being validated)."""
    from trainkit_runtime import schema_args

    return schema_args


def _load(path: Path) -> Any:
    """Parsed JSON, or None when missing/unparsable/too deep (structure checks report those)."""
    try:
        return bounded_json.load_file(path, strict=False)
    except (OSError, ValueError):
        return None


def _where(error) -> str:
    return "/".join(str(p) for p in error.absolute_path) or "(root)"


def check_configs(arch: Path, rel: Rel, report: Report) -> None:
    config_dir = arch / layout.CONFIG_DIR
    schema_path = config_dir / "config.jsonschema"
    presets_path = config_dir / "presets.json"
    schema = _load(schema_path)
    presets = _load(presets_path)

    if presets is not None and not isinstance(presets, dict):
        report.error(rel(presets_path), "must be a JSON object (merged into train_config.json)")
        presets = None
    if schema is not None and check_schema(schema, rel(schema_path), report):
        check_form_rendering(schema, rel(schema_path), report)
        initial = check_initial_values(schema, rel(schema_path), report)
        if initial is not None:
            check_defaults_and_round_trip(
                arch, schema, initial, presets or {}, rel(schema_path), rel(presets_path), report
            )
    custom_path = config_dir / "custom.json"
    custom = _load(custom_path)
    if custom is not None:
        check_custom(custom, rel(custom_path), report)
    export_path = config_dir / "export_config.json"
    if export_path.is_file():
        report.warning(
            rel(export_path),
            "not used by the platform: it writes export_config.json from its ONNX export form "
            "(initial values: input_shapes [[1, 3, 224, 224]], no input names, dynamo false, "
            "opset 18) and never reads this file; tell users what to enter in that form instead",
        )


def check_schema(schema: Any, where: str, report: Report) -> bool:
    """True when the schema is usable for the further checks."""
    if not isinstance(schema, dict):
        report.error(where, "must be a JSON object (a draft-07 JSON schema)")
        return False
    declared = schema.get("$schema")
    if declared is not None and declared not in DRAFT7_URIS:
        report.warning(where, f"$schema is {declared!r}; the platform's form expects draft-07")
    if not check_schema_refs(schema, where, report):
        return False
    try:
        Draft7Validator.check_schema(schema)
    except SchemaError as exc:
        at = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        report.error(where, f"not a valid draft-07 schema: {exc.message} (at {at})")
        return False
    properties = schema.get("properties")
    if schema.get("type") != "object" or not isinstance(properties, dict):
        report.error(
            where,
            "must be an object schema with 'properties' (the platform renders its form and "
            "train.py's flags from them)",
        )
        return False
    ok = True
    for key, prop in properties.items():
        if not key or key.startswith("-") or _SHELL_SPECIALS.search(key):
            report.error(where, f"property {key!r} cannot be a command-line flag (--{key})")
            ok = False
            continue
        if isinstance(prop, dict) and "default" in prop:
            sub = {
                "type": "object",
                "properties": {key: prop},
                "definitions": schema.get("definitions", {}),
            }
            try:
                errors = list(closed_validator(sub).iter_errors({key: prop["default"]}))
            except Exception as exc:  # e.g. a $ref this sub-schema cannot resolve
                report.warning(where, f"default of {key!r} not checked: {exc}")
                continue
            for error in errors:
                report.error(
                    where,
                    f"default of {key!r} ({prop['default']!r}) is not valid for its schema: "
                    f"{error.message}",
                )
                ok = False
    return ok


def _type_lists(schema: Any, path: str = "") -> Iterator[str]:
    """Where a schema has `type` lists that JSONSchemaDefault would have to compute a value
    for (no `default`, no `enum`)."""
    if isinstance(schema, dict):
        if isinstance(schema.get("type"), list) and not {"default", "enum"} & schema.keys():
            yield path or "(root)"
        for key, value in schema.items():
            if key in ("properties", "definitions") and isinstance(value, dict):
                for name, sub in value.items():
                    yield from _type_lists(sub, f"{path}/{name}" if path else name)
            elif isinstance(value, (dict, list)) and key not in ("default", "enum", "const"):
                yield from _type_lists(value, path)
    elif isinstance(schema, list):
        for item in schema:
            yield from _type_lists(item, path)


def check_initial_values(schema: dict, where: str, report: Report) -> dict | None:
    """The values the platform's form starts from (the backend's own JSONSchemaDefault): the
    form must open, and its first values must be valid for the schema (rjsf validates live and
    does not submit invalid values). Returns them, or None when the form does not open."""
    try:
        initial = platform.form_values(copy.deepcopy(schema))
    except platform.PlatformFormError as exc:
        lists = list(dict.fromkeys(_type_lists(schema)))
        hint = (
            f"; `type` is a list at {', '.join(lists)} (JSONSchemaDefault handles one type per "
            "property)"
            if lists
            else ""
        )
        report.error(
            where,
            f"the platform cannot compute its form's initial values ({exc}){hint}: its "
            "GET /train/config/... fails and users get no form",
        )
        return None
    for error in _safe_errors(schema, initial, where, report):
        report.error(
            where,
            f"the platform's form starts with {_where(error)} = {error.instance!r} "
            f"(JSONSchemaDefault: the default, else the first enum value, else booleans true, "
            f"numbers their minimum, strings ''), which the schema rejects: {error.message}; "
            "the form does not submit until the user changes it",
        )
    for path in dict.fromkeys(_type_lists(schema)):
        report.warning(
            where,
            f"`type` is a list without a default at {path}: the platform's JSONSchemaDefault "
            "fails with \"TypeError: unhashable type: 'list'\" where it computes a value for "
            "such a property; give it a default, or one type",
        )
    return initial


def check_schema_refs(schema: dict, where: str, report: Report) -> bool:
    """The closed world (trainkit/schema_refs.py): every $ref stays in this file, resolves and
    is not recursive. Nothing is fetched or read to find out; False after an ERROR."""
    problems = ref_problems(schema)
    for problem in problems:
        report.error(where, problem)
    return not problems


def check_form_rendering(schema: dict, where: str, report: Report) -> None:
    """WARNINGs for constructs the platform's web form (rjsf) drops or refuses, as observed
    in a real browser (trainkit/form/rjsf_observations.json)."""
    for message in form_warnings(schema):
        report.warning(where, message)


def platform_argv(config: dict) -> list[str]:
    """What the platform's stock config_to_args.py prints, word-split like its entrypoint's
    `eval` does: `--key value`, bare `--key` for true, `--key v1 v2` for lists."""
    args = []
    for key, value in config.items():
        if value is None or value == "" or key in RESERVED_KEYS:
            continue
        if isinstance(value, bool):
            if value:
                args.append(f"--{key}")
        elif isinstance(value, list):
            if value:
                args.append(f"--{key} {' '.join(map(str, value))}")
        else:
            args.append(f"--{key} {value}")
    return shlex.split(" ".join(args))


def _same(expected: Any, got: Any) -> bool:
    if isinstance(expected, bool) or isinstance(got, bool):
        return expected is got or (expected is False and got is None)
    if isinstance(expected, (int, float)) and isinstance(got, (int, float)):
        return float(expected) == float(got)
    if isinstance(expected, (list, tuple)) and isinstance(got, (list, tuple)):
        return len(expected) == len(got) and all(map(_same, expected, got))
    return expected == got


def _parse(parser, argv: list[str]) -> tuple[Any, str]:
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            return parser.parse_args(argv), ""
    except SystemExit:
        lines = err.getvalue().strip().splitlines()
        return None, lines[-1] if lines else "argument parsing failed"


def check_defaults_and_round_trip(
    arch: Path,
    schema: dict,
    initial: dict,
    presets: dict,
    schema_where: str,
    presets_where: str,
    report: Report,
) -> None:
    """The form's initial values merged with presets (setup.py's finalize_config): valid for
    the schema, and the same values in train.py after both argv forms."""
    sa = load_schema_args()
    merged = {**initial, **presets}

    def where(key: Any) -> str:
        return presets_where if key in presets else schema_where

    for error in _safe_errors(schema, merged, schema_where, report):
        key = error.absolute_path[0] if error.absolute_path else None
        if key not in presets and error.validator != "additionalProperties":
            continue  # the initial values alone: check_initial_values reported it
        message = (
            f"the form's initial values merged with presets.json are not valid for the schema: "
            f"{error.message} (at {_where(error)})"
        )
        if error.validator == "additionalProperties":
            report.warning(presets_where, message)
        else:
            report.error(where(key), message)

    passed = {k: v for k, v in merged.items() if k not in RESERVED_KEYS and v not in (None, "")}
    stock_line = not (arch / layout.DOCKER_DIR / "config_to_args.py").is_file()
    forms: list[tuple[str, Callable[[dict], list[str]]]] = [
        ("trainkit argv", lambda c: sa.config_to_argv(c, schema))
    ]
    if stock_line:
        forms.append(("platform config_to_args.py line", platform_argv))
        for key, value in passed.items():
            items = value if isinstance(value, list) else [value]
            if any(isinstance(v, str) and _SHELL_SPECIALS.search(v) for v in items):
                report.warning(
                    where(key),
                    f"value of {key!r} ({value!r}) has whitespace or shell characters; the "
                    "platform's entrypoint evals config_to_args.py's line and would split or "
                    "expand it (ship docker/config_to_args.py to avoid that)",
                )
    try:
        parser = sa.build_parser(schema, merged)
    except Exception as exc:  # the schema cannot become flags: say why
        report.error(schema_where, f"cannot build train.py's parser from the schema: {exc}")
        return
    for form, to_argv in forms:
        try:
            argv = to_argv(merged)
        except Exception as exc:  # e.g. an object value that has no argv form
            report.error(schema_where, f"{form}: cannot render the config as argv: {exc}")
            continue
        ns, problem = _parse(parser, argv)
        if ns is None:
            report.error(schema_where, f"{form}: train.py's parser rejects {argv}: {problem}")
            continue
        for key, value in passed.items():
            if form != "trainkit argv" and isinstance(value, (str, list)):
                items = value if isinstance(value, list) else [value]
                if any(isinstance(v, str) and _SHELL_SPECIALS.search(v) for v in items):
                    continue  # already warned above
            got = getattr(ns, key.replace("-", "_"), _MISSING)
            if got is _MISSING:
                report.error(where(key), f"{form}: property {key!r} has no train.py flag")
            elif not _same(value, got):
                report.error(
                    where(key),
                    f"{form}: property {key!r} = {value!r} arrives in train.py as {got!r}",
                )


_MISSING = object()


def _safe_errors(schema: dict, instance: Any, where: str, report: Report) -> list:
    try:
        return list(closed_validator(schema).iter_errors(instance))
    except Exception as exc:
        report.warning(where, f"defaults not validated: {exc}")
        return []


def check_custom(custom: Any, where: str, report: Report) -> None:
    if not isinstance(custom, dict):
        report.error(where, "must be a JSON object with model_filepath, score_name, score_regexp")
        return
    for key in ("model_filepath", "score_name", "score_regexp"):
        if not isinstance(custom.get(key), str) or not custom.get(key):
            report.error(where, f"'{key}' is missing or not a non-empty string")
    model = custom.get("model_filepath")
    if isinstance(model, str) and model:
        suffix = Path(model).suffix
        if suffix not in layout.MODEL_FORMATS:
            report.error(
                where,
                f"model_filepath {model!r} has format {suffix or '(none)'!r}; the platform "
                f"supports {' '.join(layout.MODEL_FORMATS)}",
            )
        if not model.startswith("/"):
            report.warning(where, f"model_filepath {model!r} is not an absolute container path")
    regexp = custom.get("score_regexp")
    name = custom.get("score_name")
    if not isinstance(regexp, str) or not regexp:
        return
    check_score_regexp(regexp, name if isinstance(name, str) else "", where, report)


def check_score_regexp(regexp: str, name: str, where: str, report: Report) -> None:
    """The regexp compiles, has a group, extracts the sample score the platform's way, and
    finishes on a log tail built to expose catastrophic backtracking (trainkit/score.py runs
    it in a child process under a time limit: the platform has none and would hang)."""
    try:
        compiled = score.check_compiles(regexp)
    except score.ScoreRegexpError as exc:
        report.error(where, str(exc))
        return
    if compiled.groups == 0:
        report.error(
            where, f"score_regexp {regexp!r} has no capturing group for the score's number"
        )
        return
    sample = f"{name}: {SCORE_SAMPLE_VALUE}" if name else f"score: {SCORE_SAMPLE_VALUE}"
    try:
        score.findall_bounded(regexp, score.probe_log(sample))
        got = score.extract(f"Epoch 3: loss: 0.1234\n{sample}\n{STOCK_TRAILER}", regexp).value
    except score.ScoreRegexpError as exc:
        report.error(where, str(exc))
        return
    if name and got != round(SCORE_SAMPLE_VALUE, 3):
        report.error(
            where,
            f"score_regexp {regexp!r} does not extract {SCORE_SAMPLE_VALUE} from the sample "
            f"score line {sample!r} followed by what the platform's stock entrypoint prints "
            f"after train.py (bash's `time` report, 'Training ended: ...') (got {got!r}); "
            f"print the score as '{name}: <value>' and match only that line",
        )
