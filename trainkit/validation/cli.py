"""`python -m trainkit.validation ZIP|DIR [--json]` (= `trainkit validate`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from trainkit.validation import Report, validate_path
from trainkit.validation.report import escape


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "path",
        type=Path,
        help="train-container-publish.zip, a template root directory, or one "
        "provider/category/architecture directory",
    )
    parser.add_argument("--json", action="store_true", help="print the findings as JSON")


def print_report(report: Report, path: Path, as_json: bool) -> int:
    if as_json:
        print(report.to_json())
    else:
        for line in report.lines():
            print(line)
        errors, warnings = len(report.errors), len(report.warnings)
        verdict = "OK" if report.ok else "FAILED"
        shown = escape(str(path))
        print(f"{verdict}: {shown}: {errors} error(s), {warnings} warning(s)", file=sys.stderr)
    return 0 if report.ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m trainkit.validation",
        description="Check a train container template ZIP (or directory) the way the platform "
        "does, and stricter.",
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        report = validate_path(args.path)
    except FileNotFoundError as exc:
        print(f"python -m trainkit.validation: error: {escape(str(exc))}", file=sys.stderr)
        return 2
    return print_report(report, args.path, args.json)
