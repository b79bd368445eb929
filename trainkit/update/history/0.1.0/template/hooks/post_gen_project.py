"""Shape the generated architecture: keep the chosen task's modules, copy support files.

Runs with the provider directory as cwd. Pure stdlib (never imports trainkit) and importable
unrendered; the lists below are kept equal to trainkit/layout.py by tests/template.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
from pathlib import Path

# = trainkit.layout.TEMPLATE_SUPPORT_FILES: what every generated train.py imports, even on the
# platform's stock runtime (which lacks them).
TEMPLATE_SUPPORT_FILES = ("schema_args.py", "run_control.py")
# = trainkit.layout.RUNTIME_FILES: copied too when vendor_runtime is on, so the template's own
# copies replace the platform's stock runtime in the image.
RUNTIME_FILES = (
    "config.py",
    "config_to_args.py",
    "docker-entrypoint.sh",
    "mount-s3.sh",
    "dataset.py",
    "cvat_dataset.py",
    "export.py",
    "s3_credentials.py",
    "schema_args.py",
    "run_control.py",
)
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


def find_common_dir(repo_dir: str, start_dir: str | None = None) -> Path:
    """The repository's common/ next to the template dir (`_repo_dir` may be relative)."""
    repo = Path(repo_dir)
    if not repo.is_absolute():
        repo = Path(start_dir or os.environ.get("PWD", ".")) / repo
    common = (repo / ".." / "common").resolve()
    if not common.is_dir():
        raise FileNotFoundError(f"{common}: runtime directory not found next to {repo}")
    return common


def copy_files(names: tuple[str, ...], source_dir: Path, docker_dir: Path) -> list[str]:
    """Copy the named files from source_dir into docker/ (existing template files win)."""
    missing = [name for name in names if not (source_dir / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{source_dir}: missing {', '.join(missing)}")
    copied = []
    for name in names:
        target = docker_dir / name
        if not target.exists():
            shutil.copy2(source_dir / name, target)
            copied.append(name)
    return copied


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
        common = find_common_dir(context["_repo_dir"])
        copy_files(TEMPLATE_SUPPORT_FILES, common, docker_dir)
        if context["vendor_runtime"]:
            copy_files(RUNTIME_FILES, common, docker_dir)
    except OSError as exc:
        remove_generated(arch_dir)
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    print(next_steps(display_path(arch_dir), context["task"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
