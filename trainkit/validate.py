"""`trainkit validate ZIP|DIR`: the platform's checks and stricter ones (validation/)."""

from __future__ import annotations

import argparse

from trainkit.errors import UsageError
from trainkit.validation import validate_path
from trainkit.validation.cli import add_arguments, print_report


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "validate",
        help="check a template ZIP or directory the way the platform does, and stricter",
        description="Check train-container-publish.zip (or a template root, or one "
        "provider/category/architecture directory). Prints one line per finding, "
        "'ERROR <path-in-zip>: <message>' or 'WARNING ...'; exits 0 only without ERRORs.",
    )
    add_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not args.path.exists():
        raise UsageError(f"{args.path}: no such file or directory")
    try:
        report = validate_path(args.path)
    except FileNotFoundError as exc:
        raise UsageError(str(exc)) from None
    return print_report(report, args.path, args.json)
