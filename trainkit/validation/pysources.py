"""Python sources in docker/: they compile, and setup.py/train.py import only what the
platform's build context provides (DESIGN.md §3): its stock modules with their API, the
architecture's own files, and trainkit's runtime package when docker/ carries it (a ZIP made by
`trainkit package`) or will carry it (an architecture's source directory)."""

from __future__ import annotations

import ast
import py_compile
import tempfile
from pathlib import Path

from trainkit import layout
from trainkit.platform import recipe
from trainkit.validation.report import Report

ENTRY_SCRIPTS = ("setup.py", "train.py")


def _stem_set(names: tuple[str, ...] | list[str]) -> set[str]:
    return {Path(n).stem for n in names if n.endswith(".py")}


def _defined_names(path: Path) -> set[str]:
    """Top-level names a vendored module defines (functions, classes, assignments, imports)."""
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (SyntaxError, ValueError):
        return set()
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def check_python(arch: Path, rel, report: Report, *, runtime_added: bool = False) -> None:
    docker = arch / layout.DOCKER_DIR
    if not docker.is_dir():
        return
    broken: set[Path] = set()
    with tempfile.TemporaryDirectory(prefix="trainkit-pyc-") as tmp:
        for i, source in enumerate(sorted(docker.rglob("*.py"))):
            try:
                py_compile.compile(str(source), cfile=str(Path(tmp) / f"{i}.pyc"), doraise=True)
            except py_compile.PyCompileError as exc:
                broken.add(source)
                detail = exc.exc_value
                line = getattr(detail, "lineno", None)
                message = getattr(detail, "msg", None) or str(detail)
                at = f" (line {line})" if line else ""
                report.error(rel(source), f"does not compile: {message}{at}")

    docker_modules = {p.stem for p in docker.glob("*.py")}
    if runtime_added or (docker / layout.RUNTIME_PACKAGE / "__init__.py").is_file():
        docker_modules.add(layout.RUNTIME_PACKAGE)
    platform_modules = _stem_set(sorted(recipe.context_files(set())))
    # trainkit's runtime, and the flat helper modules earlier trainkit versions copied into
    # docker/ (an architecture still importing them needs them shipped or `trainkit update`).
    ours = {layout.RUNTIME_PACKAGE, "schema_args", "run_control", "s3_credentials"}
    missing_on_platform = ours - platform_modules - docker_modules

    allowed = {module: set(names) for module, names in layout.RUNTIME_API.items()}
    for module in allowed:
        if module in docker_modules:  # vendored: whatever it defines is available
            allowed[module] |= _defined_names(docker / f"{module}.py")

    for script in ENTRY_SCRIPTS:
        path = docker / script
        if not path.is_file() or path in broken:
            continue
        tree = ast.parse(path.read_bytes(), filename=str(path))
        check_imports(tree, rel(path), missing_on_platform, report)
        if script == "setup.py":
            check_api_names(tree, rel(path), allowed, report)


def check_imports(tree: ast.AST, where: str, missing: set[str], report: Report) -> None:
    for node in ast.walk(tree):
        modules = []
        if isinstance(node, ast.Import):
            modules = [a.name.split(".")[0] for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module.split(".")[0]]
        for module in modules:
            if module in missing:
                fix = (
                    "package it with `trainkit package`, which adds trainkit's runtime to docker/"
                    if module == layout.RUNTIME_PACKAGE
                    else f"ship docker/{module}.py with the template, or move the architecture "
                    "to trainkit's runtime package with `trainkit update`"
                )
                report.error(
                    where,
                    f"line {node.lineno}: imports {module!r}, which the platform's build "
                    f"context does not provide; {fix}",
                )


def check_api_names(
    tree: ast.AST, where: str, allowed: dict[str, set[str]], report: Report
) -> None:
    aliases: dict[str, str] = {}  # local name -> runtime module
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module in allowed:
            for alias in node.names:
                if alias.name == "*":
                    report.warning(
                        where,
                        f"line {node.lineno}: 'from {node.module} import *' hides which "
                        "runtime names setup.py uses",
                    )
                elif alias.name not in allowed[node.module]:
                    report.error(
                        where,
                        f"line {node.lineno}: imports {alias.name!r} from {node.module}, which "
                        f"is not part of the {node.module} API the platform provides "
                        f"({', '.join(sorted(allowed[node.module]))})",
                    )
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in allowed:
                    aliases[alias.asname or alias.name] = alias.name
    if not aliases:
        return
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
        ):
            module = aliases[node.value.id]
            if node.attr not in allowed[module]:
                report.error(
                    where,
                    f"line {node.lineno}: uses {module}.{node.attr}, which is not part of the "
                    f"{module} API the platform provides",
                )
