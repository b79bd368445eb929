"""Carry out a plan as one transaction: every file is replaced atomically, and any error puts
back what was already done, so the architecture is left as it was.

Why per-file renames and not one swap of the whole directory: the directory keeps its identity
(a shell or an editor whose working directory it is stays in it, its other files, ownership and
permissions are untouched, nothing large is copied), and an `os.replace` of one file is atomic
on every platform. The new contents are written to a staging directory inside the architecture
first (same file system, so the renames are atomic), each file the update replaces or removes
is kept there (a hard link, or a copy where links are not possible) until the end, and the
steps are logged in its journal.json: an error in any step undoes the steps before it in
reverse, and a process killed midway leaves the staging directory, which the next
`trainkit update` reports instead of running. A program holding one of the files open keeps
reading the old content (POSIX); where the OS refuses to replace an open file (Windows), the
whole update is undone.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
from pathlib import Path

from trainkit.update import record
from trainkit.update.plan import STAGING_PREFIX, WRITES, Plan, UpdateError


def _fsync(path: Path) -> None:
    with path.open("rb") as fh:
        os.fsync(fh.fileno())


def _keep_copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


class Transaction:
    def __init__(self, arch_dir: Path) -> None:
        self.arch = arch_dir
        self.staging = arch_dir / f"{STAGING_PREFIX}{secrets.token_hex(4)}"
        self.undo: list[tuple[str, str]] = []  # (kind, relative path), in the order done
        self.made_dirs: list[Path] = []

    def _journal(self) -> None:
        (self.staging / "journal.json").write_text(
            json.dumps({"done": self.undo}, indent=1) + "\n", encoding="utf-8"
        )

    def stage(self, rel: str, data: bytes, mode: int | None) -> Path:
        path = self.staging / "new" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        if mode is not None:
            path.chmod(mode)
        _fsync(path)
        return path

    def _make_parents(self, target: Path) -> None:
        missing = []
        parent = target.parent
        while not parent.exists():
            missing.append(parent)
            parent = parent.parent
        for directory in reversed(missing):
            directory.mkdir()
            self.made_dirs.append(directory)

    def put(self, rel: str, staged: Path) -> None:
        target = self.arch / rel
        if target.exists():
            _keep_copy(target, self.staging / "old" / rel)
            kind = "replaced"
        else:
            self._make_parents(target)
            kind = "added"
        self.undo.append((kind, rel))
        self._journal()
        staged.replace(target)

    def remove(self, rel: str) -> None:
        target = self.arch / rel
        kept = self.staging / "old" / rel
        kept.parent.mkdir(parents=True, exist_ok=True)
        self.undo.append(("removed", rel))
        self._journal()
        target.replace(kept)

    def rollback(self) -> None:
        for kind, rel in reversed(self.undo):
            target, kept = self.arch / rel, self.staging / "old" / rel
            if kind == "added":
                target.unlink(missing_ok=True)
            elif kept.exists():
                kept.replace(target)
        for directory in reversed(self.made_dirs):
            with contextlib.suppress(OSError):
                directory.rmdir()
        self.undo.clear()

    def close(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)


def _check_unchanged(plan: Plan) -> None:
    """Files the plan read must still be what it read (an editor may have saved meanwhile)."""
    for change in plan.changes:
        path = plan.arch_dir / change.path
        now = record.digest(path.read_bytes()) if path.is_file() else None
        if now != change.ours:
            raise UpdateError(f"{path}: changed while updating; nothing was changed, run again")


def _remove_empty_dirs(plan: Plan, removed: list[str]) -> None:
    for rel in removed:
        parent = (plan.arch_dir / rel).parent
        with contextlib.suppress(OSError):  # the update is done; an empty dir may stay
            while parent != plan.arch_dir and parent.is_dir() and not any(parent.iterdir()):
                parent.rmdir()
                parent = parent.parent


def apply(plan: Plan) -> None:
    """Write the plan's changes and the new record into the architecture, all or nothing."""
    tx = Transaction(plan.arch_dir)
    tx.staging.mkdir(mode=0o700)
    try:
        try:
            staged = {
                c.path: tx.stage(c.path, c.content, c.mode)
                for c in plan.changes
                if c.action in WRITES and c.content is not None
            }
            if plan.record_changed:
                staged[record.RECORD_NAME] = tx.stage(
                    record.RECORD_NAME, plan.record_text.encode("utf-8"), None
                )
            _check_unchanged(plan)
            removed = []
            for change in plan.changes:
                if change.path in staged:
                    tx.put(change.path, staged[change.path])
                elif change.action == "remove":
                    tx.remove(change.path)
                    removed.append(change.path)
            if record.RECORD_NAME in staged:
                tx.put(record.RECORD_NAME, staged[record.RECORD_NAME])
        except BaseException:
            tx.rollback()
            raise
        _remove_empty_dirs(plan, removed)
    except OSError as exc:
        raise UpdateError(
            f"{plan.arch_dir}: {exc.strerror or exc} ({exc.filename}); nothing was changed"
        ) from None
    finally:
        tx.close()
