"""atomic_files.write_text_atomically: the one temp-file-and-rename every writer uses."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from trainkit_runtime import json_files
from trainkit_runtime.atomic_files import target_mode, write_text_atomically


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


def test_pieces_are_written_in_order_and_no_temp_file_stays(tmp_path):
    target = tmp_path / "a.json"
    assert write_text_atomically(target, iter(["{", '"a": 1', "}"]))
    assert target.read_text() == '{"a": 1}'
    assert leftovers(tmp_path) == []


def test_exclusive_keeps_the_first_writers_file(tmp_path):
    target = tmp_path / "marker"
    assert write_text_atomically(target, "first", exclusive=True)
    assert not write_text_atomically(target, "second", exclusive=True)
    assert target.read_text() == "first"
    assert leftovers(tmp_path) == []


def test_a_failing_last_check_leaves_the_target_as_it_was(tmp_path):
    target = tmp_path / "values.json"
    target.write_text("old")

    def refuse() -> None:
        raise PermissionError("changed under us")

    with pytest.raises(PermissionError):
        write_text_atomically(target, "new", before_replace=refuse)
    assert target.read_text() == "old"
    assert leftovers(tmp_path) == []


def test_a_failing_piece_leaves_the_target_as_it_was(tmp_path):
    target = tmp_path / "labels.json"
    target.write_text("old")

    def pieces():
        yield "{"
        raise ValueError("Out of range float values are not JSON compliant")

    with pytest.raises(ValueError, match="not JSON compliant"):
        write_text_atomically(target, pieces())
    assert target.read_text() == "old"
    assert leftovers(tmp_path) == []


def test_mode_is_kept_on_a_rewrite_and_follows_the_umask_for_a_new_file(tmp_path):
    old = os.umask(0o027)
    try:
        fresh = tmp_path / "labels.json"
        json_files.write_json_atomically(fresh, {"images": []})
        assert fresh.stat().st_mode & 0o777 == 0o640  # not mkstemp's 0600
        kept = tmp_path / "kept.json"
        kept.write_text("{}")
        kept.chmod(0o604)
        assert target_mode(kept) == 0o604
        json_files.write_json_atomically(kept, {"a": 1})
        assert kept.stat().st_mode & 0o777 == 0o604
    finally:
        os.umask(old)
