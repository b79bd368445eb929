"""Template version N (fixtures/v1) -> N+1 (fixtures/v2), where N+1 changed other lines of the
same files the researcher edits, dropped two files and added one (executable)."""

from __future__ import annotations

import json

import pytest

from trainkit import cli
from trainkit.update import record, versions
from trainkit.update.apply import apply
from trainkit.update.plan import make_plan

from .conftest import make_arch, snapshot

MODEL = "docker/model.py"
SCHEMA = "config/config.jsonschema"


def edit(path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new, 1))


@pytest.fixture(autouse=True)
def ships_v1(monkeypatch, v1):
    """This trainkit ships v1 (as it ships 0.1.0 in trainkit/update/history/)."""
    monkeypatch.setattr(versions, "shipped", lambda: (v1,))


@pytest.fixture
def arch(tmp_path, v1):
    """Baked with v1, then edited: model.py's hidden size and a schema default (epochs)."""
    arch = make_arch(tmp_path / "templates", v1)
    edit(arch / MODEL, "HIDDEN = 16", "HIDDEN = 64  # mine")
    edit(arch / SCHEMA, '"default": 2}', '"default": 30}')
    edit(arch / "docker/notes.py", "NOTES = []", "NOTES = ['keep me']")
    return arch


def test_edits_are_kept_and_template_changes_applied(arch, v2):
    plan = make_plan(arch, theirs=v2)
    apply(plan)
    model = (arch / MODEL).read_text()
    assert "HIDDEN = 64  # mine" in model  # the researcher's edit
    assert "(template version 2)" in model and "Version 2 documents its factory." in model
    schema = json.loads((arch / SCHEMA).read_text())
    assert schema["properties"]["epochs"]["default"] == 30  # the researcher's default
    assert schema["properties"]["seed"] == {"type": "integer", "minimum": 0, "default": 42}
    assert "<<<<<<<" not in model and "<<<<<<<" not in (arch / SCHEMA).read_text()
    actions = {c.path: c.action for c in plan.changes}
    assert actions == {
        MODEL: "merge",
        SCHEMA: "merge",
        "docker/Dockerfile": "update",
        "docker/helper.py": "remove",
        "docker/notes.py": "keep",
        "docker/run.sh": "add",
    }
    assert (arch / "docker/Dockerfile").read_text().startswith("FROM python:3.12")
    assert not (arch / "docker/helper.py").exists()  # dropped, never edited
    assert "keep me" in (arch / "docker/notes.py").read_text()  # dropped, but edited
    assert (arch / "docker/run.sh").stat().st_mode & 0o111  # added with its mode
    leftovers = [
        p for p in arch.parent.parent.parent.rglob("*")
        if p.suffix in (".rej", ".orig") or p.name.startswith(".trainkit-update-")
    ]  # fmt: skip
    assert leftovers == []


def test_the_record_names_the_new_version_and_a_second_update_is_a_no_op(arch, v2):
    apply(make_plan(arch, theirs=v2))
    rec = record.read_record(arch)
    assert rec.template_hash == v2.hash and rec.trainkit_version == "fixture-v2"
    assert set(rec.files) == {SCHEMA, "docker/Dockerfile", MODEL, "docker/run.sh"}
    before = snapshot(arch)
    again = make_plan(arch, theirs=v2)
    assert again.up_to_date and again.changes == []
    assert snapshot(arch) == before


def test_conflicting_edit_leaves_markers_lists_it_and_exits_1(arch, v2, monkeypatch, capsys):
    # v2 changes the docstring of make(); the researcher changed the same spot
    edit(arch / MODEL, "    return Net(classes)", '    """Mine."""\n    return Net(classes)')
    monkeypatch.setattr(versions, "installed", lambda: v2)
    status = cli.main(["update", str(arch)])
    out = capsys.readouterr().out
    assert status == 1
    assert "CONFLICT  docker/model.py" in out and "conflicts: docker/model.py" in out
    model = (arch / MODEL).read_text()
    assert (
        '<<<<<<< yours\n    """Mine."""\n=======\n    """Version 2 documents its factory."""\n'
        ">>>>>>> template fixture-v2\n    return Net(classes)\n"
    ) in model
    assert "HIDDEN = 64  # mine" in model and "(template version 2)" in model  # merged around
    assert not list(arch.rglob("*.rej")) and not list(arch.rglob("*.orig"))


def test_dry_run_prints_the_plan_and_writes_nothing(arch, v2, monkeypatch, capsys):
    monkeypatch.setattr(versions, "installed", lambda: v2)
    before = snapshot(arch.parent.parent.parent)
    assert cli.main(["update", str(arch), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert snapshot(arch.parent.parent.parent) == before
    for line in (
        "merge     docker/model.py",
        "remove    docker/helper.py",
        "KEEP      docker/notes.py",
        "add       docker/run.sh",
        "update    docker/Dockerfile",
    ):
        assert line in out, out
    assert "dry run, nothing written" in out


def test_check_exits_1_when_an_update_is_available_and_0_after(arch, v2, monkeypatch):
    monkeypatch.setattr(versions, "installed", lambda: v2)
    assert cli.main(["update", "--check", str(arch)]) == 1
    assert cli.main(["update", str(arch)]) == 0
    assert cli.main(["update", "--check", str(arch)]) == 0


def test_a_changed_answer_is_rebaked_into_the_files(arch, v1):
    """Same template, new answer: only the lines that depend on it change."""
    plan = make_plan(arch, {"author_name": "Max Mustermann"}, theirs=v1)
    apply(plan)
    assert 'authors="Max Mustermann"' in (arch / "docker/Dockerfile").read_text()
    assert [c.path for c in plan.changes] == ["docker/Dockerfile"]
    assert record.read_record(arch).answers["author_name"] == "Max Mustermann"


def test_a_file_deleted_by_the_researcher_stays_deleted(arch, v2):
    (arch / "docker/Dockerfile").unlink()
    plan = make_plan(arch, theirs=v2)
    apply(plan)
    assert not (arch / "docker/Dockerfile").exists()
    assert {c.path: c.action for c in plan.changes}["docker/Dockerfile"] == "skip"


def test_a_file_the_researcher_added_where_the_template_adds_one_conflicts(arch, v2):
    (arch / "docker/run.sh").write_text("#!/bin/sh\n# mine\nexec python model.py\n")
    plan = make_plan(arch, theirs=v2)
    apply(plan)
    text = (arch / "docker/run.sh").read_text()
    assert text.startswith("#!/bin/sh\n<<<<<<< yours\n# mine\n=======\n# new in version 2\n>>>>>>>")
    assert [c.path for c in plan.conflicts] == ["docker/run.sh"]


def test_the_researchers_own_files_are_never_touched(arch, v2):
    (arch / "docker/extra.py").write_text("MINE = 1\n")
    (arch / "notes.md").write_text("mine\n")
    apply(make_plan(arch, theirs=v2))
    assert (arch / "docker/extra.py").read_text() == "MINE = 1\n"
    assert (arch / "notes.md").read_text() == "mine\n"


def test_unknown_or_private_questions_are_refused(arch, v2, monkeypatch, capsys):
    monkeypatch.setattr(versions, "installed", lambda: v2)
    before = snapshot(arch)
    for answer in ("colour=blue", "_template=/etc"):
        assert cli.main(["update", str(arch), answer]) == 2
        assert "unknown question" in capsys.readouterr().err
    assert snapshot(arch) == before
