"""Validate the answers before cookiecutter writes anything.

Runs with the provider directory as cwd. On a bad answer it prints ONE line
(`ERROR: ...`) to stderr and exits 1; cookiecutter then removes the provider directory if it
created it. Pure stdlib and importable unrendered (the Jinja lives inside a string), so tests
and `trainkit new` can call the functions directly.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

# Names become the provider/category/architecture directories (the platform's three-level
# layout), image names and shell arguments: a letter first, then letters, digits, "_" and "-".
# No spaces, slashes or dots (so never "." or ".."). = trainkit.names.NAME_PATTERN (a test
# keeps the copies equal; hooks cannot import trainkit).
NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]{0,63}$"
NAME_FIELDS = ("provider", "category", "architecture")
TASKS = ("classification", "detection", "segmentation")
LABEL_FORMATS = ("COCO", "YOLO")
# label_format -> tasks it can express with the cvat_dataset API (as_yolo writes boxes only).
LABEL_FORMAT_TASKS = {"COCO": TASKS, "YOLO": ("detection",)}
# The score name ends up in custom.json's score_regexp ("." is escaped there) and train.py.
SCORE_NAME_PATTERN = r"^(?=[A-Za-z])[A-Za-z0-9@._ -]{1,40}$"

RAW_CONTEXT = r"""{{ cookiecutter | tojson }}"""


class AnswerError(ValueError):
    """An answer the template cannot be generated with; the message is the one line shown."""


def check_name(field: str, value: str) -> None:
    """The same rule and message as trainkit.names.name_error."""
    if not re.fullmatch(NAME_PATTERN, value):
        hint = " (spaces are not allowed)" if any(c.isspace() for c in value) else ""
        raise AnswerError(f"{field} {value!r} must match {NAME_PATTERN}{hint}")


def check_task_and_format(task: str, label_format: str) -> None:
    if task not in TASKS:
        raise AnswerError(f"task {task!r} must be one of {', '.join(TASKS)}")
    if label_format not in LABEL_FORMATS:
        raise AnswerError(
            f"label_format {label_format!r} must be one of {', '.join(LABEL_FORMATS)}"
        )
    if task not in LABEL_FORMAT_TASKS[label_format]:
        raise AnswerError(
            f"label_format {label_format!r} does not work with task {task!r} "
            f"(YOLO labels are boxes, for detection only); use COCO"
        )


def check_score_name(value: str) -> None:
    if not re.fullmatch(SCORE_NAME_PATTERN, value):
        raise AnswerError(f"score_name {value!r} must match {SCORE_NAME_PATTERN}")


def check_author(field: str, value: str) -> None:
    """Author fields go into a Dockerfile LABEL "..." string."""
    bad = sorted({c for c in value if c in '"\\$`' or not c.isprintable()})
    if bad:
        raise AnswerError(f"{field} {value!r} must not contain {''.join(bad)!r}")


def check_not_existing(provider_dir: Path, category: str, architecture: str) -> None:
    target = provider_dir / category / architecture
    if target.exists():
        raise AnswerError(f"{target} already exists; choose another architecture name or remove it")


def check_platform_lookups(provider_dir: Path, category: str, architecture: str) -> list[str]:
    """The platform finds an architecture's Dockerfile and schema by substring over its
    provider's files: refuse a name it would confuse with a sibling here or one of its stock
    templates (AnswerError), return warnings for names that may clash there later. Needs
    trainkit (its model of the platform); plain cookiecutter without it skips this check."""
    try:
        from trainkit.platform import lookup
    except ImportError:
        return []
    provider = provider_dir.name
    files = tuple(f"{lookup.SCHEMA.parent}/{n}" for n in ("config.jsonschema", "custom.json"))
    target = lookup.Arch(provider, category, architecture, (*files, "docker/Dockerfile"), "target")
    others = lookup.stock_architectures(provider)
    if provider_dir.is_dir():
        for arch in sorted(provider_dir.glob("*/*")):
            if (arch / "config").is_dir() and (arch / "docker").is_dir():
                found = lookup.architecture_files(arch, add_runtime=False)
                others.append(lookup.Arch(provider, arch.parent.name, arch.name, found))
    findings = lookup.check(target, others)
    errors = [f.message for f in findings if f.level == "ERROR"]
    if errors:
        raise AnswerError(f"architecture {architecture!r}: {errors[0]}")
    return [f"architecture {architecture!r}: {f.message}" for f in findings]


def check_answers(context: dict, provider_dir: Path) -> list[str]:
    """All checks, in prompt order; raises AnswerError on the first bad answer. Returns
    warnings (the answers work, but something about them may bite later)."""
    for field in NAME_FIELDS:
        check_name(field, str(context[field]))
    check_task_and_format(str(context["task"]), str(context["label_format"]))
    check_score_name(str(context["score_name"]))
    for field in ("author_name", "author_email"):
        check_author(field, str(context.get(field, "")))
    category, architecture = str(context["category"]), str(context["architecture"])
    check_not_existing(provider_dir, category, architecture)
    return check_platform_lookups(provider_dir, category, architecture)


def main() -> int:
    context = json.loads(RAW_CONTEXT)
    try:
        warnings = check_answers(context, Path.cwd())
    except AnswerError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    for warning in warnings:
        print(f"WARNING: {warning}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
