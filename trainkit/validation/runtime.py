"""The runtime copy in a ZIP's docker/: which trainkit release it is, and whether it changed.

`trainkit package` vendors the installed runtime (trainkit/vendor.py) into docker/. The platform
copies docker/ over its stock common/, so the image runs that copy, entry scripts included. A
copy that differs from every release trainkit knows was edited by hand (or by another tool):
what runs on the platform is then not what `trainkit run` tested.
"""

from __future__ import annotations

import re
from pathlib import Path

from trainkit import layout, vendor
from trainkit.validation.report import Report

_IGNORED_PARTS = ("__pycache__",)


def _release_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


def _copy_files(docker: Path) -> dict[str, Path]:
    """rel path (as vendor.runtime_files names it) -> file, for the copy found in docker/."""
    found: dict[str, Path] = {}
    package = docker / layout.RUNTIME_PACKAGE
    for path in sorted(package.rglob("*")):
        rel = path.relative_to(docker)
        if path.is_symlink() or not path.is_file() or set(rel.parts) & set(_IGNORED_PARTS):
            continue
        found[rel.as_posix()] = path
    for name in layout.ENTRY_SCRIPTS:
        path = docker / name
        if path.is_file() and not path.is_symlink():
            found[name] = path
    return found


def check_runtime_copy(arch: Path, rel, report: Report, *, packaged: bool) -> None:
    """NOTE which runtime the image will run; WARNING when the copy is modified or old.

    packaged=False (an architecture's source directory): the runtime is added when packaging,
    so there is nothing to compare; only say which one will be added."""
    docker = arch / layout.DOCKER_DIR
    where = rel(docker / layout.RUNTIME_PACKAGE)
    installed = vendor.RUNTIME_VERSION
    if not packaged:
        report.note(
            rel(docker),
            f"`trainkit package` adds trainkit's runtime {installed} here (trainkit_runtime/, "
            "docker-entrypoint.sh, mount-s3.sh); on the platform the image runs it instead of "
            "the platform's stock entrypoint and mount script",
        )
        return
    init = docker / layout.RUNTIME_PACKAGE / "__init__.py"
    if not init.is_file():
        return  # no copy: pysources reports imports that need one
    files = _copy_files(docker)
    version = vendor.version_of(init.read_text(encoding="utf-8", errors="replace"))
    digest = vendor.tree_hash((name, path.read_bytes()) for name, path in files.items())
    releases = vendor.known_releases()
    if version is None:
        report.warning(where, "has no __version__: not a copy of a trainkit runtime release")
        return
    if releases.get(version) != digest:
        report.warning(where, _modified_message(version, files, installed))
        return
    report.note(
        where,
        f"trainkit runtime {version}, unmodified; on the platform the image runs it, with its "
        "docker-entrypoint.sh and mount-s3.sh in place of the platform's stock ones",
    )
    if _release_key(version) < _release_key(installed):
        report.warning(
            where,
            f"runtime {version} is older than the installed trainkit's {installed}; "
            "package again to ship the newer one",
        )


def _modified_message(version: str, files: dict[str, Path], installed: str) -> str:
    if version != installed:
        return (
            f"claims trainkit runtime {version}, but its files match no release trainkit "
            f"{installed} knows: it was modified; package again with trainkit"
        )
    shipped = dict(vendor.runtime_files())
    changed = sorted(
        name
        for name in set(files) | set(shipped)
        if name not in files
        or name not in shipped
        or files[name].read_bytes() != shipped[name].read_bytes()
    )
    shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
    return (
        f"trainkit runtime {version} was modified ({shown} differ from the release); what runs on "
        "the platform is not what `trainkit run` tested: package again with trainkit"
    )
