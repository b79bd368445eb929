"""Three-way line merge with `git merge-file` semantics, in pure Python.

Why not `git merge-file` itself: researchers' machines may lack git, and a merge that depends on
which program happens to be installed gives different files on a laptop and in CI. This one is
the classic diff3 (the algorithm of GNU diff3 and Bazaar's merge3): align base with each side
(difflib, no junk heuristic), take the regions where all three agree as fixed points, and
between them take whichever side changed; when both changed differently, emit a conflict
with git's default markers. As in git's default ("zealous") level, lines both sides share at
the start or end of a conflict are moved out of it, identical changes on both sides merge
cleanly, and changes that touch or adjoin each other conflict. tests/update/test_merge.py
checks it against `git merge-file` on generated edits. Unlike git it does not join conflicts
that are separated only by lines without letters or digits (git's ALNUM refinement).
"""

from __future__ import annotations

from dataclasses import dataclass
from difflib import SequenceMatcher

START, MIDDLE, END = "<<<<<<<", "=======", ">>>>>>>"
# Files bigger than this are not merged line by line (difflib's alignment is quadratic in the
# worst case); the caller keeps the researcher's file and reports a conflict instead.
MAX_MERGE_LINES = 20_000


@dataclass(frozen=True)
class MergeResult:
    text: str
    conflicts: int


def _sync_regions(
    base: list[str], ours: list[str], theirs: list[str]
) -> list[tuple[int, int, int, int, int, int]]:
    """(base_lo, base_hi, ours_lo, ours_hi, theirs_lo, theirs_hi) of the regions where the
    three agree, in order, ending with an empty region at the three ends."""
    to_ours = SequenceMatcher(None, base, ours, autojunk=False).get_matching_blocks()
    to_theirs = SequenceMatcher(None, base, theirs, autojunk=False).get_matching_blocks()
    regions = []
    i = j = 0
    while i < len(to_ours) and j < len(to_theirs):
        a_base, a_side, a_len = to_ours[i]
        b_base, b_side, b_len = to_theirs[j]
        lo, hi = max(a_base, b_base), min(a_base + a_len, b_base + b_len)
        if lo < hi:
            regions.append(
                (lo, hi, a_side + lo - a_base, a_side + hi - a_base, b_side + lo - b_base,
                 b_side + hi - b_base)
            )  # fmt: skip
        if a_base + a_len < b_base + b_len:
            i += 1
        else:
            j += 1
    regions.append((len(base), len(base), len(ours), len(ours), len(theirs), len(theirs)))
    return regions


def _terminated(lines: list[str]) -> list[str]:
    """A marker must start a line: end a last line that has no newline."""
    if lines and not lines[-1].endswith(("\n", "\r")):
        return [*lines[:-1], lines[-1] + "\n"]
    return lines


def _conflict(ours: list[str], theirs: list[str], labels: tuple[str, str]) -> list[str]:
    head = 0
    while head < min(len(ours), len(theirs)) and ours[head] == theirs[head]:
        head += 1
    tail = 0
    while (
        tail < min(len(ours), len(theirs)) - head
        and ours[len(ours) - 1 - tail] == theirs[len(theirs) - 1 - tail]
    ):
        tail += 1
    mine, other = ours[head : len(ours) - tail], theirs[head : len(theirs) - tail]
    return [
        *ours[:head],
        f"{START} {labels[0]}\n",
        *_terminated(mine),
        f"{MIDDLE}\n",
        *_terminated(other),
        f"{END} {labels[1]}\n",
        *ours[len(ours) - tail :],
    ]


def merge3(
    base: str, ours: str, theirs: str, labels: tuple[str, str] = ("ours", "theirs")
) -> MergeResult:
    """Merge the change base -> theirs into ours. `labels` follow the conflict markers."""
    b, o, t = (text.splitlines(keepends=True) for text in (base, ours, theirs))
    if max(len(b), len(o), len(t)) > MAX_MERGE_LINES:
        raise ValueError(f"more than {MAX_MERGE_LINES} lines; not merged line by line")
    out: list[str] = []
    conflicts = 0
    at_b = at_o = at_t = 0
    for b_lo, b_hi, o_lo, o_hi, t_lo, t_hi in _sync_regions(b, o, t):
        chunk_b, chunk_o, chunk_t = b[at_b:b_lo], o[at_o:o_lo], t[at_t:t_lo]
        if chunk_o == chunk_t or chunk_t == chunk_b:
            out += chunk_o
        elif chunk_o == chunk_b:
            out += chunk_t
        else:
            out += _conflict(chunk_o, chunk_t, labels)
            conflicts += 1
        out += b[b_lo:b_hi]
        at_b, at_o, at_t = b_hi, o_hi, t_hi
    return MergeResult("".join(out), conflicts)
