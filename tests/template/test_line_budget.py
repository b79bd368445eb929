"""Architectures hold only the researcher's code: line budgets over every task x label_format
bake of the template.

A *code line* is a physical line holding at least one Python token other than a comment:
blank lines, comment-only lines and the lines of docstrings (the first statement of a module,
class or function when it is a string) do not count; a statement spread over several lines
counts each of its lines. Budgets: train.py at most 40, no file over 250, all ``.py`` files of an
architecture together at most 500 (issue 9: "well under 650")."""

from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path

import pytest

from trainkit.bake_check import bake_all
from trainkit.new import TASK_LABEL_FORMATS

TRAIN_PY_BUDGET = 40
FILE_BUDGET = 250
ARCHITECTURE_BUDGET = 500
NOT_CODE = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT}


def docstring_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            first = node.body[0] if node.body else None
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                lines.update(range(first.lineno, first.end_lineno + 1))
    return lines


def code_lines(source: str) -> int:
    lines: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in NOT_CODE and token.type != tokenize.ENDMARKER:
            lines.update(range(token.start[0], token.end[0] + 1))
    return len(lines - docstring_lines(ast.parse(source)))


def test_code_lines_definition():
    source = '''"""Module docstring,
over two lines."""

# a comment
import os  # counted: code with a trailing comment


def f(x):
    """Docstring."""
    return (x +
            1)
'''
    assert code_lines(source) == 4  # import, def, and the two lines of the return


@pytest.fixture(scope="module")
def baked(tmp_path_factory) -> dict[tuple[str, str], Path]:
    arch_dirs = bake_all(tmp_path_factory.mktemp("budget"))
    return dict(zip(TASK_LABEL_FORMATS, arch_dirs, strict=True))


def test_architectures_hold_only_the_researchers_code(baked):
    for combination, arch in baked.items():
        counts = {p.name: code_lines(p.read_text()) for p in sorted(arch.rglob("*.py"))}
        assert counts["train.py"] <= TRAIN_PY_BUDGET, (combination, counts)
        assert max(counts.values()) <= FILE_BUDGET, (combination, counts)
        assert sum(counts.values()) <= ARCHITECTURE_BUDGET, (combination, counts)
        # nothing of the runtime is in the architecture
        assert not list(arch.rglob("trainkit_runtime")), combination
