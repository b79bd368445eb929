"""The backend's own functions, compiled from its shipped source and run here.

Where trainkit has to behave exactly like the platform, it runs the platform's code instead of
a re-statement of it. `functions(file, names, namespace)` compiles the named top-level
functions (and simple constants) of one file under `backend/` and executes them in a fresh
namespace: the real stdlib, dockerfile-parse and python-dotenv, plus what `namespace` supplies
for the parts that only exist in the platform's deployment (its database, the Docker daemon,
FastAPI). Decorators (FastAPI routes) are dropped; nothing else of the file runs, so its
imports of the deployment's packages are never executed.
"""

from __future__ import annotations

import ast
import functools
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from datetime import datetime
from itertools import chain
from operator import itemgetter
from pathlib import Path
from types import CodeType, SimpleNamespace
from typing import Any, Optional, Union

from dockerfile_parse import DockerfileParser
from dotenv import dotenv_values, set_key

BACKEND_DIR = Path(__file__).resolve().parent / "backend"
ROUTERS_TRAIN = "agri_gaia_backend/routers/train.py"
UTIL_TRAIN = "agri_gaia_backend/util/train.py"
UTIL_JSONSCHEMA = "agri_gaia_backend/util/jsonschema.py"

log = logging.getLogger("trainkit.platform.backend")


class BackendCodeError(RuntimeError):
    """A function trainkit runs is missing from the shipped backend file (a newer backend)."""


class HTTPException(Exception):
    """Stands in for fastapi.HTTPException: the status and detail the platform would answer."""

    def __init__(self, status_code: int, detail: Any = None) -> None:
        super().__init__(f"{status_code}: {detail}")
        self.status_code = status_code
        self.detail = detail


def _unavailable(what: str):
    def fail(*_args: Any, **_kwargs: Any) -> Any:
        raise BackendCodeError(f"the backend called {what}, which trainkit does not model")

    return fail


def base_namespace() -> dict[str, Any]:
    """What the backend files import that exists outside its deployment too."""
    try:  # the backend copies trees with distutils (gone from the stdlib in Python 3.12)
        from distutils.dir_util import copy_tree as distutils_copy_tree

        def copy_tree(src: str, dst: str) -> list[str]:
            return distutils_copy_tree(src, dst, verbose=0)  # no "copying ..." log lines

    except ImportError:  # same effect for the trees it copies: files overwrite, dirs merge

        def copy_tree(src: str, dst: str) -> list[str]:
            shutil.copytree(src, dst, dirs_exist_ok=True)
            return []

    return {
        "os": os,
        "re": re,
        "json": json,
        "tempfile": tempfile,
        "subprocess": subprocess,
        "Path": Path,
        "Dict": dict,
        "List": list,
        "Tuple": tuple,
        "Union": Union,
        "Optional": Optional,
        "Set": set,
        "itemgetter": itemgetter,
        "chain": chain,
        "datetime": datetime,
        "copy": shutil.copy,
        "copy_tree": copy_tree,
        "DockerfileParser": DockerfileParser,
        "dotenv_values": dotenv_values,
        "set_key": set_key,
        "HTTPException": HTTPException,
        "logger": log,
        "logging": logging,
        # FastAPI/SQLAlchemy names that appear in signatures (annotations, Depends defaults)
        "Session": object,
        "Request": object,
        "Response": lambda status_code=200, headers=None: SimpleNamespace(
            status_code=status_code, headers=headers or {}
        ),
        "status": SimpleNamespace(HTTP_201_CREATED=201, HTTP_202_ACCEPTED=202),
        "TrainContainer": object,
        "TaskCreator": object,
        "KeycloakUser": object,
        "Container": object,
        "get_task_creator": None,
        "Depends": lambda dependency=None: None,
        "get_db": None,
        "dict2jsonschema": _unavailable("dict2jsonschema (genson: a config.json form)"),
    }


@functools.cache
def _compiled(relpath: str, names: tuple[str, ...]) -> CodeType:
    path = BACKEND_DIR / relpath
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    wanted, found, body = set(names), set(), []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if node.name in wanted:
                node.decorator_list = []  # e.g. @router.patch(...)
                body.append(node)
                found.add(node.name)
        elif isinstance(node, ast.Assign) and all(
            isinstance(target, ast.Name) and target.id in wanted for target in node.targets
        ):
            body.append(node)
            found |= {target.id for target in node.targets}
    if missing := wanted - found:
        raise BackendCodeError(f"{path}: no top-level {', '.join(sorted(missing))}")
    return compile(ast.Module(body=body, type_ignores=[]), str(path), "exec")


def functions(
    relpath: str, names: Iterable[str], namespace: Mapping[str, Any] | None = None
) -> SimpleNamespace:
    """The named definitions of backend/<relpath>, executed in base_namespace() + namespace.

    The definitions share one namespace (so they call each other, and the callables in
    `namespace` stand in for what they call that trainkit does not load)."""
    scope = {**base_namespace(), **(namespace or {}), "__name__": f"backend:{relpath}"}
    exec(_compiled(relpath, tuple(sorted(names))), scope)  # the shipped backend's own code
    return SimpleNamespace(**{name: scope[name] for name in names})
