"""Helpers of the update tests: the two fixture template versions (fixtures/v1, fixtures/v2),
an architecture as `trainkit new` of a given version leaves it, and byte-level snapshots."""

from __future__ import annotations

import dataclasses
import stat
from pathlib import Path
from typing import Any

import pytest

from trainkit.update import record, versions

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def fixture_version(name: str) -> versions.TemplateVersion:
    return dataclasses.replace(versions.from_directory(FIXTURES / name), name=f"fixture-{name}")


def make_arch(
    templates: Path, version: versions.TemplateVersion, answers: dict[str, Any] | None = None
) -> Path:
    """What `trainkit new` with `version`'s template writes, record included (the fixture
    templates have no hook, so the record is written here the way update writes it)."""
    bake = versions.bake(version, answers or {})
    a = bake.answers
    arch = templates / a["provider"] / a["category"] / a["architecture"]
    for rel, (data, mode) in bake.files.items():
        path = arch / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(mode)
    if version.writes_record:
        rec = record.Record(
            version.hash,
            bake.answers,
            version.name,
            {rel: record.digest(data) for rel, (data, _) in bake.files.items()},
        )
        (arch / record.RECORD_NAME).write_text(record.to_json(rec), encoding="utf-8")
    return arch


def snapshot(root: Path) -> dict[str, tuple[str, bytes | None, int]]:
    """Every entry below root (hidden ones too): kind, content, permission bits."""
    entries = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        kind = "dir" if stat.S_ISDIR(info.st_mode) else "file"
        data = path.read_bytes() if kind == "file" else None
        entries[path.relative_to(root).as_posix()] = (kind, data, stat.S_IMODE(info.st_mode))
    return entries


@pytest.fixture
def v1() -> versions.TemplateVersion:
    return fixture_version("v1")


@pytest.fixture
def v2() -> versions.TemplateVersion:
    return fixture_version("v2")
