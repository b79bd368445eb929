"""The score the platform stores for a run, read from the end of its log (DESIGN.md §3)."""

from __future__ import annotations

import re

# The platform reads this many log lines from the end of the container's output.
TAIL_LINES = 50


def tail(text: str, lines: int = TAIL_LINES) -> str:
    return "\n".join(text.splitlines()[-lines:])


def platform_score(log_text: str, score_regexp: str) -> float | None:
    """The platform's algorithm: the last 50 lines as one text, `re.findall(score_regexp)`,
    groups flattened, the last value that parses as a float, rounded to 3 decimals."""
    values: list[float] = []
    for match in re.findall(score_regexp, tail(log_text)):
        for item in match if isinstance(match, tuple) else (match,):
            try:
                values.append(float(item))
            except ValueError:
                continue
    return round(values[-1], 3) if values else None
