"""The score the platform stores for a run, from the end of its log: the backend's own
`update_train_container_score` (routers/train.py), run over a log given here.

Once the container has exited (its exit code is not looked at), the backend reads
`logs(tail=50)`, runs `re.findall(score_regexp)` over that text, flattens groups, keeps what
parses as a float and stores the last one rounded to 3 decimals; no match is its 404.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from types import SimpleNamespace

from trainkit.platform import backend_code
from trainkit.platform.backend_code import HTTPException


@dataclass(frozen=True)
class ScoreResult:
    value: float | None
    detail: str | None  # the platform's answer when it stores no score
    tail: int  # how many log lines the platform read


def _tail(text: str, lines: int) -> str:
    """`docker logs --tail N`: the last N lines."""
    kept = text.splitlines(keepends=True)
    return "".join(kept[-lines:]) if lines > 0 else text


def extract(log_text: str, score_regexp: str) -> ScoreResult:
    """What PATCH /train/containers/{id}/score stores for an exited container with this log."""
    asked: list[int] = []
    row = SimpleNamespace(container_id="local", score=None, score_regexp=score_regexp)

    def logs(tail: int | None = None) -> bytes:
        asked.append(tail or 0)
        return _tail(log_text, tail or 0).encode("utf-8", "replace")

    code = backend_code.functions(
        backend_code.ROUTERS_TRAIN,
        ["update_train_container_score"],
        {
            "is_float": backend_code.functions(backend_code.UTIL_TRAIN, ["is_float"]).is_float,
            "check_exists": lambda value, detail=None: value,
            "sql_api": SimpleNamespace(
                get_train_container=lambda db, _id: row,
                update_train_container=lambda db, _row: None,
            ),
            "get_container_status": lambda _id: "exited",
            "get_container": lambda _id: SimpleNamespace(logs=logs),
        },
    )
    try:
        code.update_train_container_score(1, db=None)
    except HTTPException as exc:
        return ScoreResult(None, str(exc.detail), asked[-1] if asked else 0)
    except Exception as exc:  # e.g. a score_regexp that does not compile: the platform's 500
        return ScoreResult(None, f"{type(exc).__name__}: {exc}", asked[-1] if asked else 0)
    return ScoreResult(row.score, None, asked[-1])


def platform_score(log_text: str, score_regexp: str) -> float | None:
    """The value the platform stores, or None where it stores none."""
    return extract(log_text, score_regexp).value


@functools.cache
def tail_lines() -> int:
    """How many lines from the end of the log the platform reads (its `logs(tail=...)`)."""
    return extract("", "x").tail


def lines_from_end(log_text: str, score_regexp: str) -> int | None:
    """How far from the end (1 = the last line) the last line holding a score match is, or None
    when the whole log has none: says by how much a score outside the platform's tail missed."""
    try:
        pattern = re.compile(score_regexp)
    except re.error:
        return None
    lines = log_text.splitlines()
    for back, line in enumerate(reversed(lines), start=1):
        if pattern.search(line):
            return back
    return None
