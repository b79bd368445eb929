"""The `trainkit` command.

Each subcommand lives in its own module exposing `add_parser(subparsers)`, which registers the
subcommand and calls `set_defaults(func=run)`, and `run(args) -> int`. Errors the user can fix
are raised as `TrainkitError` and printed here as one line.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from trainkit.errors import TrainkitError

# Modules implementing `add_parser(subparsers)` and `run(args) -> int`, in --help order.
COMMAND_MODULES = (
    "trainkit.new",
    "trainkit.synthetic",
    "trainkit.run",
    "trainkit.package",
    "trainkit.validate",
    "trainkit.upload",
    "trainkit.export",
    "trainkit.form.command",
    "trainkit.update.command",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trainkit", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue  # command not part of this checkout
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except TrainkitError as exc:
        print(f"trainkit {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"trainkit {args.command}: interrupted", file=sys.stderr)
        return 130
