"""The template validator: the platform's rules (DESIGN.md §3) and stricter ones.

`validate_path(path)` takes a ZIP (checked from its central directory, then extracted into a
temp dir with sizes enforced), a template root directory (what the ZIP extracts to), or one
architecture directory (holding config/ and docker/), and returns a Report of findings.
"""

from __future__ import annotations

import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from trainkit import layout
from trainkit.validation import schemas
from trainkit.validation.configs import check_configs
from trainkit.validation.dockerfile import check_dockerfile
from trainkit.validation.dotenv import check_env_file
from trainkit.validation.pysources import check_python
from trainkit.validation.report import ARCHIVE, ERROR, NOTE, WARNING, Finding, Report
from trainkit.validation.runtime import check_runtime_copy
from trainkit.validation.snapshot import snapshot_directory
from trainkit.validation.structure import check_json_file, check_platform_lookups, check_structure
from trainkit.validation.zipsafety import DEFAULT_LIMITS, Limits, check_entries, extract

__all__ = [
    "ERROR",
    "NOTE",
    "WARNING",
    "Finding",
    "Limits",
    "Report",
    "check_architecture",
    "validate_path",
]


def check_architecture(
    arch: Path, rel: Callable[[Path], str], report: Report, *, packaged: bool
) -> None:
    """The stricter checks on one provider/category/architecture directory.

    packaged: arch comes from a ZIP (docker/ holds the runtime copy `trainkit package` added),
    not from an architecture's source tree (where packaging will add it)."""
    check_configs(arch, rel, report)
    check_env_file(arch, rel, report)
    check_dockerfile(arch, rel, report)
    check_python(arch, rel, report, runtime_added=not packaged)
    check_runtime_copy(arch, rel, report, packaged=packaged)


def validate_zip(zip_path: Path, report: Report, limits: Limits = DEFAULT_LIMITS) -> None:
    try:
        zf = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as exc:
        report.error(ARCHIVE, f"not a readable ZIP archive: {exc}")
        return
    with zf, tempfile.TemporaryDirectory(prefix="trainkit-validate-") as tmp:
        if not check_entries(zf, report, limits) or not extract(zf, Path(tmp), report, limits):
            return
        tree = check_structure(Path(tmp), report)
        if tree is not None and tree.arch_dir is not None:
            check_architecture(tree.arch_dir, tree.rel, report, packaged=True)


def _is_architecture_dir(path: Path) -> bool:
    return all(
        (path / sub).is_dir() and not (path / sub).is_symlink()
        for sub in (layout.CONFIG_DIR, layout.DOCKER_DIR)
    )


def validate_directory(path: Path, report: Report, limits: Limits = DEFAULT_LIMITS) -> None:
    """Validate a directory through a snapshot of its regular files (validation/snapshot.py),
    so no check ever opens a FIFO or device or follows a symlink out of the template."""
    path = path.absolute()
    arch_mode = _is_architecture_dir(path)
    with tempfile.TemporaryDirectory(prefix="trainkit-validate-") as tmp:
        if arch_mode:
            # One architecture directory: report paths as provider/category/architecture/...
            base = path.parents[2] if len(path.parents) >= 3 else path.parent
            shown = path.relative_to(base).as_posix()
        else:
            shown = path.name
        copy = Path(tmp, shown)
        copy.parent.mkdir(parents=True, exist_ok=True)
        if not snapshot_directory(path, copy, shown, report, limits):
            return
        if arch_mode:

            def rel(p: Path) -> str:
                return p.relative_to(tmp).as_posix()

            _check_architecture_dir(copy, rel, report)
            check_platform_lookups(copy, rel, report, source_tree=True, siblings_of=path)
            check_architecture(copy, rel, report, packaged=False)
            return
        tree = check_structure(Path(tmp), report)
        if tree is not None and tree.arch_dir is not None:
            packaged = (tree.arch_dir / layout.DOCKER_DIR / layout.RUNTIME_PACKAGE).is_dir()
            check_architecture(tree.arch_dir, tree.rel, report, packaged=packaged)


def _check_architecture_dir(arch: Path, rel: Callable[[Path], str], report: Report) -> None:
    """For an architecture directory on its own: required files and JSON parsing (the
    snapshot holds only regular files and directories)."""
    for entry, kind in schemas.required_entries(schemas.template_schema()):
        path = arch / entry
        if kind == "file" and not path.is_file():
            report.error(
                rel(path), f"Entry '{entry}' not found (required by validation/template.json)"
            )
    for path in sorted(arch.rglob("*")):
        if path.is_file() and path.suffix in (".json", ".jsonschema"):
            check_json_file(path, path.relative_to(arch).as_posix(), rel(path), report)


def validate_path(path: Path | str, limits: Limits = DEFAULT_LIMITS) -> Report:
    path = Path(path)
    report = Report()
    if path.is_dir():
        validate_directory(path, report, limits)
    elif path.is_file():
        validate_zip(path, report, limits)
    elif path.exists():
        raise FileNotFoundError(f"{path}: not a ZIP file or a directory; not opened")
    else:
        raise FileNotFoundError(f"{path}: no such file or directory")
    return report
