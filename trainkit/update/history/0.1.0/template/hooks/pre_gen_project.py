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
NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]*$"
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


def check_answers(context: dict, provider_dir: Path) -> None:
    """All checks, in prompt order; raises AnswerError on the first bad answer."""
    for field in NAME_FIELDS:
        check_name(field, str(context[field]))
    check_task_and_format(str(context["task"]), str(context["label_format"]))
    check_score_name(str(context["score_name"]))
    for field in ("author_name", "author_email"):
        check_author(field, str(context.get(field, "")))
    check_not_existing(provider_dir, str(context["category"]), str(context["architecture"]))


def main() -> int:
    context = json.loads(RAW_CONTEXT)
    try:
        check_answers(context, Path.cwd())
    except AnswerError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
