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
from trainkit_runtime import __version__
from trainkit_runtime.redaction import one_line

# What `trainkit --help` says (the module docstring is for developers).
DESCRIPTION = (
    "Write, run, package and validate train containers for the Agri-Gaia platform: generate an "
    "architecture, train it locally against a mocked MinIO folder, package it, and find out what "
    "the platform would reject before you upload."
)

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


class MaskingArgumentParser(argparse.ArgumentParser):
    """argparse, but its errors never echo a value from the command line: a token typed after
    a mistyped flag (`--tok SECRET`) would otherwise be printed in "unrecognized arguments".
    Option names stay visible (`--tok`), every other word the user typed becomes `***`."""

    _typed: tuple[str, ...] = ()

    def parse_known_args(self, args=None, namespace=None):
        words = list(sys.argv[1:] if args is None else args)
        self._typed = tuple(words)
        return super().parse_known_args(words, namespace)

    def error(self, message: str):
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {mask_values(message, self._typed)}\n")


def mask_values(message: str, typed: tuple[str, ...]) -> str:
    """`message` with every command-line value in it replaced by ***: the non-option words
    and the part after `=` of `--opt=value` (longest first, so no part survives)."""
    values = set()
    for word in typed:
        if word.startswith("-"):
            _option, sep, value = word.partition("=")
            if sep and value:
                values.add(value)
        elif word:
            values.add(word)
    for value in sorted(values, key=len, reverse=True):
        if len(value) >= 2:
            message = message.replace(value, "***")
    return one_line(message)


def build_parser() -> argparse.ArgumentParser:
    parser = MaskingArgumentParser(prog="trainkit", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"trainkit {__version__}")
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
        print(f"trainkit {args.command}: error: {one_line(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"trainkit {args.command}: interrupted", file=sys.stderr)
        return 130
