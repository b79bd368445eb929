"""On any error the architecture is left byte for byte as it was, and nothing outside it is
written: a failure injected in the middle of applying, a bake that fails, a file edited while
updating, a leftover of an interrupted update."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainkit import cli
from trainkit.update import apply as apply_module
from trainkit.update import versions
from trainkit.update.apply import apply
from trainkit.update.plan import STAGING_PREFIX, WRITES, UpdateError, make_plan

from .conftest import make_arch, snapshot


@pytest.fixture(autouse=True)
def ships_v1(monkeypatch, v1):
    monkeypatch.setattr(versions, "shipped", lambda: (v1,))


@pytest.fixture
def arch(tmp_path, v1):
    arch = make_arch(tmp_path / "templates", v1)
    model = arch / "docker/model.py"
    model.write_text(model.read_text().replace("HIDDEN = 16", "HIDDEN = 64"))
    (arch / "docker/notes.py").chmod(0o600)
    return arch


def test_failure_at_every_step_leaves_the_directory_byte_identical(arch, v2, monkeypatch):
    """The n-th file operation fails, for every n of the plan (puts, removes, the record)."""
    plan = make_plan(arch, theirs=v2)
    steps = sum(c.action in (*WRITES, "remove") for c in plan.changes) + plan.record_changed
    assert steps == 7  # 3 updated or merged, 2 removed, 1 added, the record
    before = snapshot(arch.parent.parent.parent)
    real_put, real_remove = apply_module.Transaction.put, apply_module.Transaction.remove
    for fail_at in range(1, steps + 1):
        calls = {"n": 0}

        def failing(real, calls=calls, fail_at=fail_at):
            def step(self, *args):
                calls["n"] += 1
                if calls["n"] == fail_at:
                    raise OSError(28, "No space left on device (injected)", str(args[0]))
                return real(self, *args)

            return step

        monkeypatch.setattr(apply_module.Transaction, "put", failing(real_put))
        monkeypatch.setattr(apply_module.Transaction, "remove", failing(real_remove))
        with pytest.raises(UpdateError, match=r"injected.*nothing was changed"):
            apply(make_plan(arch, theirs=v2))
        assert calls["n"] == fail_at  # it failed midway, after fail_at - 1 steps were done
        assert snapshot(arch.parent.parent.parent) == before, f"failure at step {fail_at}"
    monkeypatch.setattr(apply_module.Transaction, "put", real_put)
    monkeypatch.setattr(apply_module.Transaction, "remove", real_remove)
    apply(make_plan(arch, theirs=v2))  # and without a failure it goes through
    assert snapshot(arch.parent.parent.parent) != before


def test_interrupt_midway_is_rolled_back_too(arch, v2, monkeypatch):
    plan = make_plan(arch, theirs=v2)
    before = snapshot(arch)
    real_put = apply_module.Transaction.put
    state = {"n": 0}

    def put(self, *args):
        state["n"] += 1
        if state["n"] == 3:
            raise KeyboardInterrupt
        return real_put(self, *args)

    monkeypatch.setattr(apply_module.Transaction, "put", put)
    with pytest.raises(KeyboardInterrupt):
        apply(plan)
    assert snapshot(arch) == before


def test_a_failing_bake_changes_nothing(arch, monkeypatch, capsys, v1):
    broken = v1.template_dir.parent / "does-not-exist"
    monkeypatch.setattr(
        versions, "installed", lambda: versions.TemplateVersion("x", broken, "sha256:0")
    )
    before = snapshot(arch.parent.parent.parent)
    status = cli.main(["update", str(arch)])
    err = capsys.readouterr().err
    assert status == 3 and err.startswith("trainkit update: error: ") and err.count("\n") == 1
    assert snapshot(arch.parent.parent.parent) == before


def test_a_file_edited_after_planning_aborts_without_changes(arch, v2):
    plan = make_plan(arch, theirs=v2)
    (arch / "docker/model.py").write_text("# saved by an editor meanwhile\n")
    before = snapshot(arch)
    with pytest.raises(UpdateError, match="changed while updating"):
        apply(plan)
    assert snapshot(arch) == before


def test_a_leftover_staging_directory_is_reported_not_overwritten(arch, v2, monkeypatch, capsys):
    monkeypatch.setattr(versions, "installed", lambda: v2)
    leftover = arch / f"{STAGING_PREFIX}dead"
    (leftover / "old").mkdir(parents=True)
    before = snapshot(arch)
    assert cli.main(["update", str(arch)]) == 3
    assert "interrupted update" in capsys.readouterr().err
    assert snapshot(arch) == before


def test_nothing_outside_the_architecture_is_written(arch, v2, tmp_path):
    sibling = arch.parent / "Other"
    sibling.mkdir()
    (sibling / "model.py").write_text("x = 1\n")
    outside = {
        p: p.stat().st_mtime_ns for p in Path(tmp_path).rglob("*") if arch not in (p, *p.parents)
    }
    apply(make_plan(arch, theirs=v2))
    after = {
        p: p.stat().st_mtime_ns for p in Path(tmp_path).rglob("*") if arch not in (p, *p.parents)
    }
    assert after == outside


def test_a_symlink_where_the_template_has_a_file_is_refused(arch, v2, tmp_path):
    target = tmp_path / "elsewhere.py"
    target.write_text("x = 1\n")
    (arch / "docker/model.py").unlink()
    (arch / "docker/model.py").symlink_to(target)
    with pytest.raises(UpdateError, match="not a regular file"):
        make_plan(arch, theirs=v2)
    assert target.read_text() == "x = 1\n"
