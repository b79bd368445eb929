"""The score the platform stores for a run, from the end of its log: the backend's own
`update_train_container_score` (routers/train.py), run over a log given here.

Once the container has exited (its exit code is not looked at), the backend reads
`logs(tail=50)`, runs `re.findall(score_regexp)` over that text, flattens groups, keeps what
parses as a float and stores the last one rounded to 3 decimals; no match is its 404.

It runs `re.findall` with no time limit, so a `score_regexp` with catastrophic backtracking
hangs it. trainkit never runs a template's regexp in its own process: the backend's function
(its source, compiled from the shipped file) runs in a child `python -I -S` with the stdlib
`re` — the platform's engine, so the verdict is the platform's — killed after a time limit,
and :func:`probe_log` builds a log tail that exposes backtracking.
"""

from __future__ import annotations

import ast
import functools
import json
import re
import subprocess
import sys
from dataclasses import dataclass

from trainkit.platform import backend_code

# The platform reads this many log lines from the end (its `logs(tail=50)`; a test keeps this
# equal to what the backend's code asks for).
TAIL_LINES = 50
# Seconds a regexp may take on a log (interpreter start-up included).
REGEXP_TIME_LIMIT = 3.0
MAX_REGEXP_LENGTH = 1000

# The stand-ins for the database and the Docker daemon the backend's function calls, then the
# call; {functions} is the backend's source of is_float and update_train_container_score.
_CHILD = """\
import json, re, sys
from itertools import chain

class HTTPException(Exception):
    def __init__(self, status_code, detail=None):
        super().__init__(detail)
        self.status_code, self.detail = status_code, detail

Session, get_db = object, None
def Depends(dependency=None):
    return None

data = json.load(sys.stdin)
row = type("Row", (), {{"container_id": "local", "score": None}})()
row.score_regexp = data["pattern"]
asked = []

def _logs(tail=None):
    asked.append(tail or 0)
    lines = data["text"].splitlines(keepends=True)
    return "".join(lines[-tail:] if tail else lines).encode("utf-8", "replace")

check_exists = lambda value, detail=None: value
get_container_status = lambda container_id: "exited"
get_container = lambda container_id: type("C", (), {{"logs": staticmethod(_logs)}})
sql_api = type("S", (), {{
    "get_train_container": staticmethod(lambda db, i: row),
    "update_train_container": staticmethod(lambda db, r: None),
}})

{functions}

out = {{"value": None, "detail": None}}
try:
    update_train_container_score(1, db=None)
    out["value"] = row.score
except HTTPException as exc:
    out["detail"] = str(exc.detail)
except Exception as exc:
    out["detail"] = type(exc).__name__ + ": " + str(exc)
out["tail"] = asked[-1] if asked else 0
pattern = re.compile(data["pattern"])
out["back"] = next(
    (n for n, line in enumerate(reversed(data["text"].splitlines()), 1) if pattern.search(line)),
    None,
)
json.dump(out, sys.stdout)
"""

_FINDALL = (
    "import json, re, sys\n"
    "d = json.load(sys.stdin)\n"
    "json.dump(re.findall(d['pattern'], d['text']), sys.stdout)\n"
)


class ScoreRegexpError(ValueError):
    """A score_regexp that does not compile, is too long or runs past the time limit."""


@dataclass(frozen=True)
class ScoreResult:
    value: float | None
    detail: str | None  # the platform's answer when it stores no score
    tail: int  # how many log lines the platform read
    lines_from_end: int | None  # where the last line holding a match is (1 = the last line)


@functools.cache
def _backend_source() -> str:
    """The backend's own source of the two functions the child runs (decorators left out)."""
    parts = []
    for relpath, name in (
        (backend_code.UTIL_TRAIN, "is_float"),
        (backend_code.ROUTERS_TRAIN, "update_train_container_score"),
    ):
        source = (backend_code.BACKEND_DIR / relpath).read_text(encoding="utf-8")
        node = next(
            n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef) and n.name == name
        )
        parts.append(ast.get_source_segment(source, node))
    return "\n\n".join(parts)


def check_compiles(score_regexp: str) -> re.Pattern:
    """The compiled regexp (compiling is bounded: no matching happens)."""
    if len(score_regexp) > MAX_REGEXP_LENGTH:
        raise ScoreRegexpError(
            f"score_regexp is {len(score_regexp)} characters long, more than the limit "
            f"{MAX_REGEXP_LENGTH}"
        )
    try:
        return re.compile(score_regexp)
    except (re.error, RecursionError, OverflowError) as exc:
        raise ScoreRegexpError(f"score_regexp {score_regexp!r} does not compile: {exc}") from None


def _child(program: str, score_regexp: str, text: str, time_limit: float):
    check_compiles(score_regexp)
    try:
        done = subprocess.run(
            [sys.executable, "-I", "-S", "-c", program],
            input=json.dumps({"pattern": score_regexp, "text": text}),
            capture_output=True,
            text=True,
            timeout=time_limit,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ScoreRegexpError(
            f"score_regexp {score_regexp!r} did not finish within {time_limit:g} s on a "
            f"{TAIL_LINES}-line log tail (catastrophic backtracking); the platform runs "
            "re.findall over the log tail with no time limit and would hang"
        ) from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ScoreRegexpError(f"score_regexp {score_regexp!r} failed: {last[:200]}")
    return json.loads(done.stdout)


def extract(log_text: str, score_regexp: str, time_limit: float = REGEXP_TIME_LIMIT) -> ScoreResult:
    """What PATCH /train/containers/{id}/score stores for an exited container with this log
    (ScoreRegexpError when the regexp is refused or runs past the time limit). The whole log is
    given: the backend's code takes its tail itself."""
    program = _CHILD.format(functions=_backend_source())
    out = _child(program, score_regexp, log_text, time_limit)
    return ScoreResult(out["value"], out["detail"], out["tail"], out["back"])


def platform_score(
    log_text: str, score_regexp: str, time_limit: float = REGEXP_TIME_LIMIT
) -> float | None:
    """The value the platform stores, or None where it stores none."""
    return extract(log_text, score_regexp, time_limit).value


@functools.cache
def tail_lines() -> int:
    """How many lines from the end of the log the platform reads (its `logs(tail=...)`)."""
    return extract("", "x").tail


def findall_bounded(
    score_regexp: str, text: str, time_limit: float = REGEXP_TIME_LIMIT
) -> list[str | tuple[str, ...]]:
    """`re.findall(score_regexp, text)` in a child `python -I -S`, killed after time_limit."""
    found = _child(_FINDALL, score_regexp, text, time_limit)
    return [tuple(m) if isinstance(m, list) else m for m in found]


def probe_log(score_line: str) -> str:
    """A 50-line log tail as training prints it, with the lines that expose backtracking: long
    runs of digits, letters, blanks and punctuation that end in a character nothing expects."""
    runs = ["0", "9.", "a", "A", " ", "\t", ".", ":", "=", "-", "_", "0 ", "a:", "x=0.5, "]
    lines = [
        "Epoch 3: 100%|##########| 8/8 [00:00<00:00, 12.34it/s, v_num=0, loss=0.123]",
        "Epoch 3: loss: 0.1234",
        score_line,
        f"{score_line} {score_line}",
    ]
    lines += [(run * 64)[:64] + "!" for run in runs]
    lines += [(run * 1000)[:1000] + "\x00" for run in ("0", "a", " ", ".")]
    lines += [score_line.split(":")[0] + ": " + "0" * 200 + "x"]
    lines.append("Training ended")
    return "\n".join(lines[-TAIL_LINES:]) + "\n"
