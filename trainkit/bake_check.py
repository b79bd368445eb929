"""`python -m trainkit.bake_check DIR`: bake the template for every valid task x label_format
combination into DIR and lint the result (ruff format --check, ruff check) with the
repository's ruff settings. scripts/lint runs it; exit status 0 when all is clean."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from trainkit.new import TASK_LABEL_FORMATS, bake

LEFTOVER_MARKERS = ("{{ cookiecutter.", "{{cookiecutter.", "{%", "%}")


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """Silence file descriptor 1 (the hooks' "next steps" of every bake); errors stay on 2."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with Path(os.devnull).open("w") as null:
            os.dup2(null.fileno(), 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def bake_all(out_dir: Path) -> list[Path]:
    """One architecture per valid combination, named <Task><Format>; returns their dirs."""
    arch_dirs = []
    for task, label_format in TASK_LABEL_FORMATS:
        name = f"{task.capitalize()}{label_format.capitalize()}"
        provider_dir = bake(
            out_dir, {"task": task, "label_format": label_format, "architecture": name}
        )
        arch_dirs.append(provider_dir / task.capitalize() / name)
    return arch_dirs


def leftovers(root: Path) -> list[str]:
    """Files under root that still hold Jinja syntax."""
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace")
            if any(marker in text for marker in LEFTOVER_MARKERS):
                found.append(str(path))
    return found


def lint(root: Path, config: Path) -> int:
    """ruff of this interpreter's environment (not whatever is on PATH), with config's rules,
    run from config's directory: ruff resolves a --config file's relative settings (`src`,
    which decides first- vs third-party imports) against the working directory."""
    ruff = [sys.executable, "-m", "ruff"]
    config, root = config.resolve(), root.resolve()
    status = 0
    for command in (
        [*ruff, "format", "--check", "--quiet", "--config", str(config), str(root)],
        [*ruff, "check", "--quiet", "--config", str(config), str(root)],
    ):
        status |= subprocess.run(command, cwd=config.parent, check=False).returncode
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainkit.bake_check", description=__doc__)
    parser.add_argument("out_dir", type=Path, help="an empty directory to bake into")
    parser.add_argument(
        "--ruff-config",
        type=Path,
        default=Path("pyproject.toml"),
        help="ruff settings to lint the baked code with (default: ./pyproject.toml)",
    )
    args = parser.parse_args(argv)
    logging.getLogger("cookiecutter").setLevel(logging.CRITICAL)
    with quiet_stdout():
        bake_all(args.out_dir)
    status = lint(args.out_dir, args.ruff_config)
    left = leftovers(args.out_dir)
    if left:
        print(f"bake_check: Jinja left in {', '.join(left)}", file=sys.stderr)
        status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
