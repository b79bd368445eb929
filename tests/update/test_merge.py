"""The three-way line merge (trainkit/update/merge.py): git merge-file's semantics, checked
against `git merge-file` itself on generated edits where git is installed: the same merged
text, conflict markers included, and the same number of conflicts."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.services import skip_or_fail
from trainkit.update.merge import MAX_MERGE_LINES, merge3

BASE = "".join(f"line {i}\n" for i in range(10))


def edited(text: str, **changes: str) -> str:
    lines = text.splitlines(keepends=True)
    for index, new in changes.items():
        lines[int(index.removeprefix("l"))] = new
    return "".join(lines)


def test_separate_changes_merge_cleanly():
    result = merge3(BASE, edited(BASE, l2="ours 2\n"), edited(BASE, l7="theirs 7\n"))
    assert result.conflicts == 0
    assert result.text == edited(BASE, l2="ours 2\n", l7="theirs 7\n")


def test_identical_changes_merge_cleanly():
    both = edited(BASE, l4="same\n")
    assert merge3(BASE, both, both) == merge3(BASE, both, BASE)
    assert merge3(BASE, both, both).text == both


def test_one_sided_change_is_taken():
    theirs = edited(BASE, l0="new first\n") + "appended\n"
    assert merge3(BASE, BASE, theirs).text == theirs
    assert merge3(BASE, theirs, BASE).text == theirs


def test_same_lines_changed_differently_conflict_with_gits_markers():
    result = merge3(BASE, edited(BASE, l3="ours\n"), edited(BASE, l3="theirs\n"), ("yours", "tpl"))
    assert result.conflicts == 1
    assert "line 2\n<<<<<<< yours\nours\n=======\ntheirs\n>>>>>>> tpl\nline 4\n" in result.text


def test_adjacent_changes_conflict_as_in_git():
    result = merge3(BASE, edited(BASE, l3="ours\n"), edited(BASE, l4="theirs\n"))
    assert result.conflicts == 1


def test_lines_both_sides_share_are_kept_out_of_the_conflict():
    ours = edited(BASE, l3="same a\n", l4="ours\n", l5="same b\n")
    theirs = edited(BASE, l3="same a\n", l4="theirs\n", l5="same b\n")
    result = merge3(BASE, ours, theirs)
    assert "same a\n<<<<<<< ours\nours\n=======\ntheirs\n>>>>>>> theirs\nsame b\n" in result.text


def test_a_missing_final_newline_does_not_glue_a_marker_to_a_line():
    result = merge3("a\nb", "a\nB", "a\nX")
    assert result.text == "a\n<<<<<<< ours\nB\n=======\nX\n>>>>>>> theirs\n"


def test_huge_files_are_refused_not_merged():
    big = "x\n" * (MAX_MERGE_LINES + 1)
    with pytest.raises(ValueError, match="lines"):
        merge3(big, big + "y\n", "z\n" + big)


# --- parity with git merge-file --------------------------------------------------------

GIT = shutil.which("git")


@pytest.fixture
def require_git() -> None:
    if GIT is None:
        skip_or_fail("git is not installed; parity with git merge-file not checked")


def git_merge_file(tmp: Path, base: str, ours: str, theirs: str) -> tuple[str, int]:
    for name, text in (("ours", ours), ("base", base), ("theirs", theirs)):
        (tmp / name).write_text(text)
    proc = subprocess.run(
        [GIT, "merge-file", "-p", "-L", "ours", "-L", "base", "-L", "theirs",
         str(tmp / "ours"), str(tmp / "base"), str(tmp / "theirs")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode >= 0, proc.stderr
    return proc.stdout, proc.returncode


def side(base_lines: list[str], tag: str):
    """Edits of a base: per line keep, delete, replace, or insert after (distinct new text)."""
    ops = st.lists(
        st.sampled_from(["keep", "keep", "keep", "delete", "replace", "insert"]),
        min_size=len(base_lines),
        max_size=len(base_lines),
    )

    def apply(choices: list[str]) -> str:
        out = []
        for i, (line, op) in enumerate(zip(base_lines, choices, strict=True)):
            if op == "keep":
                out.append(line)
            elif op == "replace":
                out.append(f"{tag} {i}\n")
            elif op == "insert":
                out += [line, f"{tag} after {i}\n"]
        return "".join(out)

    return ops.map(apply)


@pytest.mark.usefixtures("require_git")
@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data(), size=st.integers(min_value=1, max_value=14))
def test_same_result_as_git_merge_file(tmp_path, data, size):
    base_lines = [f"line {i}\n" for i in range(size)]
    ours = data.draw(side(base_lines, "ours"))
    theirs = data.draw(side(base_lines, "theirs"))
    base = "".join(base_lines)
    expected, git_conflicts = git_merge_file(tmp_path, base, ours, theirs)
    result = merge3(base, ours, theirs)
    assert result.text == expected, (base, ours, theirs)
    assert result.conflicts == git_conflicts
