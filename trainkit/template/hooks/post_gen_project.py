"""Shape the generated architecture: keep the chosen task's modules, print the next steps.

Runs with the provider directory as cwd. Pure stdlib (never imports trainkit) and importable
unrendered. Nothing of trainkit's runtime is copied: the architecture holds only its own code,
and `trainkit package` / `trainkit run` add the runtime where the image is made.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
from pathlib import Path

# Per-task modules live in docker/_tasks/<task>/ in the template.
TASKS_DIR = "_tasks"

RAW_CONTEXT = r"""{{ cookiecutter | tojson }}"""


def select_task_files(docker_dir: Path, task: str) -> list[str]:
    """Move docker/_tasks/<task>/* into docker/ and drop the other tasks' modules."""
    tasks_dir = docker_dir / TASKS_DIR
    chosen = tasks_dir / task
    if not chosen.is_dir():
        raise FileNotFoundError(f"{chosen}: no modules for task {task!r}")
    moved = []
    for path in sorted(chosen.iterdir()):
        shutil.move(str(path), docker_dir / path.name)
        moved.append(path.name)
    shutil.rmtree(tasks_dir)
    return moved


def remove_generated(arch_dir: Path) -> None:
    """Undo this generation: the architecture (new, the pre-gen hook checked) and its category
    directory when that is left empty. cookiecutter removes the provider dir if it made it."""
    shutil.rmtree(arch_dir, ignore_errors=True)
    with contextlib.suppress(OSError):
        arch_dir.parent.rmdir()


def display_path(path: Path, base: str | None = None) -> str:
    """path relative to the user's working directory when below it, else absolute."""
    try:
        return str(path.relative_to(Path(base or os.environ.get("PWD", "/")).resolve()))
    except ValueError:
        return str(path)


def next_steps(arch_rel: str, task: str) -> str:
    return "\n".join(
        [
            f"Created {arch_rel}",
            "Next steps:",
            f"  trainkit dataset --out dev/minio --id 1 --images 200 --task {task}",
            f"  trainkit run {arch_rel} --minio dev/minio --dataset-id 1",
            f"  edit {arch_rel}/docker/model.py (network) and datamodule.py (data) for your model",
        ]
    )


def main() -> int:
    context = json.loads(RAW_CONTEXT)
    arch_dir = Path.cwd() / context["category"] / context["architecture"]
    docker_dir = arch_dir / "docker"
    try:
        select_task_files(docker_dir, context["task"])
    except OSError as exc:
        remove_generated(arch_dir)
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    print(next_steps(display_path(arch_dir), context["task"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
