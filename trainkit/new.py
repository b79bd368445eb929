"""`trainkit new`: generate provider/category/architecture from the cookiecutter template.

Runs cookiecutter on the template shipped inside trainkit (`trainkit/template/`) and writes
./templates/PROVIDER/CATEGORY/ARCHITECTURE in the current directory (`--output-dir` to choose):
your architectures live in your own repository. The pre-gen hook refuses to overwrite an
existing architecture, so an existing provider directory is fine. KEY=VALUE arguments answer
questions up front (`task=detection architecture=MyDet`); `--no-input` takes the defaults for
the rest. In trainkit's own checkout, `python -m trainkit.new --refresh-examples` re-bakes the
committed examples in ./templates after the template changed.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from cookiecutter.exceptions import CookiecutterException, FailedHookException
from cookiecutter.main import cookiecutter

from trainkit import paths
from trainkit.errors import TrainkitError, UsageError

DEFAULT_OUTPUT_DIR = paths.DEFAULT_TEMPLATES_DIR
# The committed examples in templates/: one per task, default answers otherwise.
EXAMPLES: tuple[dict[str, str], ...] = (
    {"task": "classification"},
    {"task": "detection"},
    {"task": "segmentation"},
)
# Every valid task x label_format combination (the pre-gen hook rejects the others).
TASK_LABEL_FORMATS: tuple[tuple[str, str], ...] = (
    ("classification", "COCO"),
    ("detection", "YOLO"),
    ("detection", "COCO"),
    ("segmentation", "COCO"),
)


@cache
def hook_module(name: str = "pre_gen_project") -> ModuleType:
    """The template's hooks/<name>.py as a module (it is valid Python before rendering)."""
    path = paths.TEMPLATE_DIR / "hooks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"trainkit_hook_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse_extra_context(items: list[str]) -> dict[str, str]:
    context: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"{item!r}: expected KEY=VALUE (e.g. task=detection)")
        context[key] = value
    return context


def check_extra_context(extra: dict[str, str], template_dir: Path) -> None:
    """Reject unknown keys and bad names before cookiecutter creates any directory."""
    known = json.loads((template_dir / "cookiecutter.json").read_text(encoding="utf-8"))
    unknown = sorted(key for key in extra if key not in known or key.startswith("_"))
    if unknown:
        choices = ", ".join(key for key in known if not key.startswith("_"))
        raise UsageError(f"unknown question(s) {', '.join(unknown)}; the questions are {choices}")
    hooks = hook_module()
    for field in hooks.NAME_FIELDS:
        if field in extra:
            try:
                hooks.check_name(field, extra[field])
            except hooks.AnswerError as exc:
                raise TrainkitError(str(exc)) from None


def bake(
    output_dir: Path,
    extra_context: dict[str, Any] | None = None,
    no_input: bool = True,
    template_dir: Path = paths.TEMPLATE_DIR,
) -> Path:
    """Generate one architecture into output_dir; returns its provider directory.

    Raises FailedHookException when a hook rejects the answers (it printed the reason)."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    # The hooks run in the provider dir; PWD tells them where the user is (for the paths shown).
    with (
        tempfile.TemporaryDirectory(prefix="trainkit-cookiecutter-") as scratch,
        _environ(PWD=str(Path.cwd())),
    ):
        return Path(
            cookiecutter(
                str(template_dir.resolve()),
                no_input=no_input,
                extra_context=dict(extra_context or {}),
                output_dir=str(output_dir),
                overwrite_if_exists=True,  # the provider dir may exist; the hook guards the rest
                # replays and clones go to a scratch dir, never to ~/.cookiecutter*
                default_config={"replay_dir": scratch, "cookiecutters_dir": scratch},
            )
        )


@contextlib.contextmanager
def _environ(**values: str) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def refresh_examples(templates_dir: Path = DEFAULT_OUTPUT_DIR) -> list[Path]:
    """Re-bake EXAMPLES from the template and replace their directories in templates_dir."""
    refreshed = []
    with tempfile.TemporaryDirectory(prefix="trainkit-examples-") as tmp:
        for answers in EXAMPLES:
            out = Path(tmp) / answers["task"]
            provider_dir = bake(out, answers)
            (arch_dir,) = [p for p in provider_dir.glob("*/*") if p.is_dir()]
            rel = arch_dir.relative_to(out)
            target = templates_dir / rel
            if target.exists():
                shutil.rmtree(target)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(arch_dir, target)
            refreshed.append(target)
    return refreshed


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "new",
        help="generate an architecture from trainkit's template (cookiecutter)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("answers", nargs="*", metavar="KEY=VALUE", help="answers to questions")
    parser.add_argument("--no-input", action="store_true", help="do not ask; use the defaults")
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=DEFAULT_OUTPUT_DIR,
        help="where provider/category/architecture goes (default: ./templates)",
    )
    parser.add_argument(
        "--template-dir",
        action="store_true",
        help="print the directory of the cookiecutter template trainkit ships (for a plain "
        "`cookiecutter DIR`) and exit",
    )
    parser.add_argument(
        "--refresh-examples",
        action="store_true",
        help="re-bake the examples (one per task) into --output-dir and exit (trainkit's own "
        "checkout keeps them in templates/)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not getattr(args, "verbose", False):
        # cookiecutter logs a traceback when a hook fails; the hook's one line says it all.
        logging.getLogger("cookiecutter").setLevel(logging.CRITICAL)
    if args.template_dir:
        print(paths.TEMPLATE_DIR)
        return 0
    if args.refresh_examples:
        for target in refresh_examples(args.output_dir):
            print(f"refreshed {target}")
        return 0
    extra = parse_extra_context(args.answers)
    check_extra_context(extra, paths.TEMPLATE_DIR)
    try:
        bake(args.output_dir, extra, no_input=args.no_input)
    except FailedHookException:
        return 1  # the hook printed the reason as one `ERROR: ...` line
    except (CookiecutterException, ValueError) as exc:
        raise TrainkitError(str(exc)) from None
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m trainkit.new ...` = `trainkit new ...`."""
    from trainkit.cli import main as cli_main

    return cli_main(["new", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
