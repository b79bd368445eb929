"""The record of how an architecture was made: `.trainkit-answers.json` in its directory.

Written by the template's post-gen hook (so a plain `cookiecutter` run writes it too; the hook
carries its own copy of `template_hash`, which a test keeps equal to this one) and rewritten by
`trainkit update`. It holds the answers, the trainkit version and a content hash of the template
tree that made the architecture, and the sha256 of every generated file, so `trainkit update`
can re-bake exactly that template and tell which files the researcher edited.

Where it lives, and why: in the architecture directory, next to config/ and docker/, not in
them. Not in docker/ (the platform copies docker/ recursively into the image's build context),
not in config/ and without the stem `config` (the platform counts directories named config
and finds the form schema as the first file with that stem), hidden (the platform's and the
validator's file lookups skip hidden path parts). `trainkit package` packages only config/ and
docker/, so the record never reaches the ZIP or the image: it is the researcher's development
metadata, kept in their repository beside the code.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainkit.errors import TrainkitError

RECORD_NAME = ".trainkit-answers.json"
# Never part of a template's identity or of a baked architecture.
IGNORED = ("__pycache__", "*.pyc", "*.pyo", ".DS_Store")
MAX_RECORD_BYTES = 1024 * 1024
ABOUT = (
    "How this architecture was generated (trainkit new); `trainkit update` reads it to bring "
    "in template changes. Keep it with the architecture; it is not packaged into the ZIP."
)


class RecordError(TrainkitError):
    """The record file exists but cannot be used."""


@dataclass(frozen=True)
class Record:
    template_hash: str
    answers: dict[str, Any]
    trainkit_version: str | None = None
    # relative path -> "sha256:<hex>" of each generated file, as generated
    files: dict[str, str] = field(default_factory=dict)


def ignored(name: str) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in IGNORED)


def tree_files(root: Path) -> Iterator[tuple[str, Path]]:
    """(posix path relative to root, path) of every regular file below root, sorted, without
    IGNORED names and the record itself."""
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(ignored(part) for part in rel.parts) or rel.as_posix() == RECORD_NAME:
            continue
        if path.is_file() and not path.is_symlink():
            yield rel.as_posix(), path


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def hash_entries(entries: Iterable[tuple[str, bytes]]) -> str:
    """sha256 over (relative path, content) pairs, independent of their order."""
    total = hashlib.sha256()
    for rel, data in sorted(entries):
        total.update(rel.encode("utf-8") + b"\0" + hashlib.sha256(data).digest())
    return "sha256:" + total.hexdigest()


def template_hash(template_dir: Path) -> str:
    """The identity of a template version: its whole tree (cookiecutter.json, hooks, Jinja
    files), so any change to what a bake can produce gives a new hash."""
    return hash_entries((rel, path.read_bytes()) for rel, path in tree_files(template_dir))


def to_json(record: Record) -> str:
    data = {
        "about": ABOUT,
        "trainkit_version": record.trainkit_version,
        "template_hash": record.template_hash,
        "answers": dict(sorted(record.answers.items())),  # as the hook's Jinja tojson sorts
        "files": dict(sorted(record.files.items())),
    }
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def read_record(arch_dir: Path) -> Record | None:
    """The architecture's record, None when it has none (made by trainkit 0.1.0 or earlier)."""
    path = arch_dir / RECORD_NAME
    if not path.exists() and not path.is_symlink():
        return None
    if path.is_symlink() or not path.is_file():
        raise RecordError(f"{path}: not a regular file")
    if path.stat().st_size > MAX_RECORD_BYTES:
        raise RecordError(f"{path}: larger than {MAX_RECORD_BYTES} bytes; not a trainkit record")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise RecordError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise RecordError(f"{path}: expected a JSON object")
    template = data.get("template_hash")
    answers = data.get("answers")
    files = data.get("files", {})
    version = data.get("trainkit_version")
    if not isinstance(template, str) or not template.startswith("sha256:"):
        raise RecordError(f"{path}: 'template_hash' must be a string 'sha256:<hex>'")
    if not isinstance(answers, dict) or not all(isinstance(k, str) for k in answers):
        raise RecordError(f"{path}: 'answers' must be an object of question -> answer")
    if not isinstance(files, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in files.items()
    ):
        raise RecordError(f"{path}: 'files' must be an object of path -> 'sha256:<hex>'")
    if version is not None and not isinstance(version, str):
        raise RecordError(f"{path}: 'trainkit_version' must be a string")
    return Record(template, answers, version, files)
