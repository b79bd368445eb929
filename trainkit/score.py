"""The score the platform stores for a run, read from the end of its log (DESIGN.md §3).

The platform runs `re.findall(score_regexp, <last 50 log lines>)` with no time limit, so a
`score_regexp` with catastrophic backtracking hangs it. trainkit never runs a template's regexp
in its own process: :func:`findall_bounded` runs the stdlib `re` (the platform's engine, so the
verdict is the platform's) in a child interpreter that is killed after a time limit, and
:func:`probe_regexp` tries a regexp on a log tail built to expose backtracking.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

# The platform reads this many log lines from the end of the container's output.
TAIL_LINES = 50
# Seconds a regexp may take on a 50-line log tail (interpreter start-up included).
REGEXP_TIME_LIMIT = 3.0
MAX_REGEXP_LENGTH = 1000

_CHILD = (
    "import json, re, sys\n"
    "d = json.load(sys.stdin)\n"
    "json.dump(re.findall(d['pattern'], d['text']), sys.stdout)\n"
)


class ScoreRegexpError(ValueError):
    """A score_regexp that does not compile, is too long or runs past the time limit."""


def tail(text: str, lines: int = TAIL_LINES) -> str:
    return "\n".join(text.splitlines()[-lines:])


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


def findall_bounded(
    score_regexp: str, text: str, time_limit: float = REGEXP_TIME_LIMIT
) -> list[str | tuple[str, ...]]:
    """`re.findall(score_regexp, text)` in a child `python -I -S`, killed after time_limit."""
    check_compiles(score_regexp)
    try:
        done = subprocess.run(
            [sys.executable, "-I", "-S", "-c", _CHILD],
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
    return [tuple(m) if isinstance(m, list) else m for m in json.loads(done.stdout)]


def last_float(matches: list[str | tuple[str, ...]]) -> float | None:
    """The platform's reading of findall's result: groups flattened, floats kept, the last
    one rounded to 3 decimals."""
    values: list[float] = []
    for match in matches:
        for item in match if isinstance(match, tuple) else (match,):
            try:
                values.append(float(item))
            except ValueError:
                continue
    return round(values[-1], 3) if values else None


def platform_score(
    log_text: str, score_regexp: str, time_limit: float = REGEXP_TIME_LIMIT
) -> float | None:
    """The platform's algorithm: the last 50 lines as one text, `re.findall(score_regexp)`,
    groups flattened, the last value that parses as a float, rounded to 3 decimals.
    ScoreRegexpError when the regexp is refused or runs past the time limit."""
    return last_float(findall_bounded(score_regexp, tail(log_text), time_limit))


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
