"""Three-way line merge with `git merge-file` semantics, in pure Python.

Why not `git merge-file` itself: researchers' machines may lack git, and a merge that depends on
which program happens to be installed gives different files on a laptop and in CI. This one is
the classic diff3 (the algorithm of GNU diff3 and Bazaar's merge3): align base with each side
(difflib, no junk heuristic), take the regions where all three agree as fixed points, and
between them take whichever side changed; when both changed differently, emit a conflict
with git's default markers. As git's default level (XDL_MERGE_ZEALOUS_ALNUM) does: identical
changes on both sides merge cleanly, changes that touch or adjoin each other conflict, lines
both sides of a conflict have in common are taken out of it, and conflicts with
three unchanged lines or fewer (or only lines without letters or digits) between them are
joined.
tests/update/test_merge.py checks the result against `git merge-file` on generated edits.
Where the two differ it is in the alignment of repeated lines (difflib finds the longest
matching blocks, git's xdiff a shortest edit script).
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


# A merged file as a list of regions: ("same", lines) the same in ours and theirs, ("take",
# lines) changed by one side only, ("conflict", ours, theirs).
Region = tuple


def _refined(ours: list[str], theirs: list[str]) -> list[Region]:
    """git's refinement of a conflict: the lines both sides have in common (aligned with
    each other) are taken out of it, leaving one conflict per differing stretch."""
    if not ours or not theirs:
        return [("conflict", ours, theirs)]
    regions: list[Region] = []
    matcher = SequenceMatcher(None, ours, theirs, autojunk=False)
    for tag, o_lo, o_hi, t_lo, t_hi in matcher.get_opcodes():
        if tag == "equal":
            regions.append(("same", ours[o_lo:o_hi]))
        else:
            regions.append(("conflict", ours[o_lo:o_hi], theirs[t_lo:t_hi]))
    return regions


def _has_alnum(lines: list[str]) -> bool:
    return any(ch.isalnum() for line in lines for ch in line)


def _simplified(regions: list[Region]) -> list[Region]:
    """git's simplification: two conflicts with at most 3 unchanged lines between them,
    or only lines without letters or digits, become one conflict (it reads more easily)."""
    out: list[Region] = []
    for region in regions:
        if (
            region[0] == "conflict"
            and len(out) >= 2
            and out[-1][0] == "same"
            and out[-2][0] == "conflict"
            and (len(out[-1][1]) <= 3 or not _has_alnum(out[-1][1]))
        ):
            between = out.pop()[1]
            _, ours, theirs = out.pop()
            region = ("conflict", [*ours, *between, *region[1]], [*theirs, *between, *region[2]])
        out.append(region)
    return out


def _regions(base: list[str], ours: list[str], theirs: list[str]) -> list[Region]:
    regions: list[Region] = []
    at_b = at_o = at_t = 0
    for b_lo, b_hi, o_lo, o_hi, t_lo, t_hi in _sync_regions(base, ours, theirs):
        chunk_b, chunk_o, chunk_t = base[at_b:b_lo], ours[at_o:o_lo], theirs[at_t:t_lo]
        if chunk_o == chunk_t:  # unchanged, or changed alike: git sees no hunk here
            regions.append(("same", chunk_o))
        elif chunk_t == chunk_b:
            regions.append(("take", chunk_o))
        elif chunk_o == chunk_b:
            regions.append(("take", chunk_t))
        else:
            regions += _refined(chunk_o, chunk_t)
        regions.append(("same", base[b_lo:b_hi]))
        at_b, at_o, at_t = b_hi, o_hi, t_hi
    # neighbouring "same" regions are one stretch of unchanged lines (what git counts)
    joined: list[Region] = []
    for region in regions:
        if region[0] == "same" and not region[1]:
            continue  # (an empty "take" stays: a deletion is a hunk to git, it separates)
        if region[0] == "same" and joined and joined[-1][0] == "same":
            joined[-1] = ("same", [*joined[-1][1], *region[1]])
        else:
            joined.append(region)
    return joined


def merge3(
    base: str, ours: str, theirs: str, labels: tuple[str, str] = ("ours", "theirs")
) -> MergeResult:
    """Merge the change base -> theirs into ours. `labels` follow the conflict markers."""
    b, o, t = (text.splitlines(keepends=True) for text in (base, ours, theirs))
    if max(len(b), len(o), len(t)) > MAX_MERGE_LINES:
        raise ValueError(f"more than {MAX_MERGE_LINES} lines; not merged line by line")
    out: list[str] = []
    conflicts = 0
    for region in _simplified(_regions(b, o, t)):
        if region[0] != "conflict":
            out += region[1]
            continue
        conflicts += 1
        out += [f"{START} {labels[0]}\n", *_terminated(region[1]), f"{MIDDLE}\n"]
        out += [*_terminated(region[2]), f"{END} {labels[1]}\n"]
    return MergeResult("".join(out), conflicts)
