"""Shape the generated architecture: keep the chosen task's modules, record how it was made,
print the next steps.

Runs with the provider directory as cwd. Pure stdlib (never imports trainkit) and importable
unrendered. Nothing of trainkit's runtime is copied: the architecture holds only its own code,
and `trainkit package` / `trainkit run` add the runtime where the image is made. The record
(`.trainkit-answers.json`: answers, template hash, trainkit version, generated files' hashes)
is what `trainkit update` merges template changes with; it is written here, so a plain
`cookiecutter` run leaves it too. Its format and `template_hash` = trainkit/update/record.py
(a test keeps them equal).
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import os
import re
import shutil
import sys
from pathlib import Path

# Per-task modules live in docker/_tasks/<task>/ in the template.
TASKS_DIR = "_tasks"

RAW_CONTEXT = r"""{{ cookiecutter | tojson }}"""

# = trainkit.update.record: the record's name, what a template hash leaves out, its "about".
RECORD_NAME = ".trainkit-answers.json"
IGNORED = ("__pycache__", "*.pyc", "*.pyo", ".DS_Store")
RECORD_ABOUT = (
    "How this architecture was generated (trainkit new); `trainkit update` reads it to bring "
    "in template changes. Keep it with the architecture; it is not packaged into the ZIP."
)
VERSION_RE = re.compile(r"""^__version__\s*=\s*["']([^"']+)["']\s*$""", re.MULTILINE)


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


def tree_files(root: Path) -> list[tuple[str, Path]]:
    """(posix path relative to root, path) of the regular files below root, sorted; without
    IGNORED names and the record."""
    found = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        skip = any(fnmatch.fnmatchcase(part, p) for part in rel.parts for p in IGNORED)
        if skip or rel.as_posix() == RECORD_NAME or path.is_symlink() or not path.is_file():
            continue
        found.append((rel.as_posix(), path))
    return found


def template_hash(template_dir: Path) -> str:
    """sha256 over (relative path, sha256 of content) of the whole template tree."""
    total = hashlib.sha256()
    for rel, path in tree_files(template_dir):
        total.update(rel.encode("utf-8") + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return "sha256:" + total.hexdigest()


def template_dir_of(context: dict, start_dir: str | None = None) -> Path:
    """The template cookiecutter rendered (`_repo_dir`, relative to the user's directory)."""
    repo = Path(context["_repo_dir"])
    if not repo.is_absolute():
        repo = Path(start_dir or os.environ.get("PWD", ".")) / repo
    return repo.resolve()


def trainkit_version(template_dir: Path) -> str | None:
    """The release of the trainkit that ships this template (trainkit/template/ sits two levels
    below trainkit_runtime/ in a checkout and in site-packages); read, never imported."""
    init = template_dir.parent.parent / "trainkit_runtime" / "__init__.py"
    match = VERSION_RE.search(init.read_text(encoding="utf-8")) if init.is_file() else None
    return match.group(1) if match else None


def write_record(arch_dir: Path, context: dict) -> None:
    template_dir = template_dir_of(context)
    record = {
        "about": RECORD_ABOUT,
        "trainkit_version": trainkit_version(template_dir),
        "template_hash": template_hash(template_dir),
        "answers": {key: value for key, value in context.items() if not key.startswith("_")},
        "files": {
            rel: "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
            for rel, path in tree_files(arch_dir)
        },
    }
    text = json.dumps(record, indent=2, ensure_ascii=False) + "\n"
    (arch_dir / RECORD_NAME).write_text(text, encoding="utf-8")


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
        write_record(arch_dir, context)
    except OSError as exc:
        remove_generated(arch_dir)
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    print(next_steps(display_path(arch_dir), context["task"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
