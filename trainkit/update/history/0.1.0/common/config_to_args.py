#!/usr/bin/env python
"""Print train.py's arguments from ``train_config.json`` (and ``config.jsonschema`` if present).

Run from the WORKDIR, like the platform's script of the same name:

* ``python config_to_args.py`` prints ONE line of shell-quoted arguments. The platform's stock
  entrypoint ``eval``s that line, so every value is quoted (``shlex.quote``; values with control
  characters such as newlines use bash's ``$'...'`` so the line stays one line): ``$(...)``,
  ``;``, backticks and quotes in form values stay text.
* ``python config_to_args.py --null`` prints the arguments NUL-separated, for our entrypoint's
  ``mapfile -d ''`` (no shell parsing at all).

The argument list itself comes from ``schema_args.config_to_argv``. On a missing or invalid
``train_config.json`` it prints one line naming the file and the problem and exits 1.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from schema_args import (
    CONFIG_FILENAME,
    SCHEMA_FILENAME,
    SchemaArgsError,
    config_to_argv,
    load_json_file,
    load_schema,
)


def bash_quote(arg: str) -> str:
    """Quote for bash on one line: ``shlex.quote``, or ``$'...'`` when control chars occur."""
    if not any(ord(c) < 32 or ord(c) == 127 for c in arg):
        return shlex.quote(arg)
    out = []
    for c in arg:
        if c in "\\'":
            out.append("\\" + c)
        elif ord(c) < 32 or ord(c) == 127:
            out.append(f"\\x{ord(c):02x}")
        else:
            out.append(c)
    return "$'" + "".join(out) + "'"


def read_argv(config_path: Path, schema_path: Path) -> list[str]:
    """The argv for train.py; the schema is optional (the platform does not ship it)."""
    config = load_json_file(config_path)
    if not isinstance(config, dict):
        raise SchemaArgsError(f"{config_path}: expected a JSON object, got {type(config).__name__}")
    schema = load_schema(schema_path) if schema_path.is_file() else None
    return config_to_argv(config, schema)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--null", action="store_true", help="NUL-separated output")
    parser.add_argument("--config", type=Path, default=Path(CONFIG_FILENAME))
    parser.add_argument("--schema", type=Path, default=Path(SCHEMA_FILENAME))
    args = parser.parse_args(argv)
    try:
        train_argv = read_argv(args.config, args.schema)
    except SchemaArgsError as exc:
        print(f"config_to_args: {exc}", file=sys.stderr)
        return 1
    out = sys.stdout.buffer
    if args.null:
        # os.fsencode: the bytes execve will get, whatever the locale.
        out.write(b"".join(os.fsencode(a) + b"\0" for a in train_argv))
    else:
        out.write(os.fsencode(" ".join(bash_quote(a) for a in train_argv)) + b"\n")
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
