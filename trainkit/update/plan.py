"""What `trainkit update` does to each file: the plan (also what `--dry-run` prints).

For every path the old template (base) or the installed one (theirs) generates, compared with
the architecture's file (ours):

| base vs theirs | ours | action |
|---|---|---|
| same | anything | nothing (the template did not change it) |
| changed | = base (never edited) | `update`: take theirs |
| changed | = theirs | nothing |
| changed | edited | `merge` line by line (merge.py); `conflict` when both changed the same lines |
| changed | deleted | `skip`: stays deleted, listed |
| new in theirs | absent | `add` |
| new in theirs | present, different | `conflict` (both added it) |
| gone from theirs | = base | `remove` |
| gone from theirs | edited | `keep`, listed |

Files neither template generates (the researcher's own) are never looked at. The record is
rewritten last, naming the installed template, so the next update starts from it.
"""

from __future__ import annotations

import json
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainkit.errors import TrainkitError, UsageError
from trainkit.names import NAME_KINDS
from trainkit.update import merge, record, versions

STAGING_PREFIX = ".trainkit-update-"
MAX_FILE_BYTES = 10 * 1024 * 1024
OURS_LABEL = "yours"

# Actions that write a file, and the ones that need the researcher's attention.
WRITES = ("update", "merge", "conflict", "add")
ATTENTION = ("conflict", "keep", "skip")


class UpdateError(TrainkitError):
    """The architecture cannot be updated as asked; nothing was changed."""


@dataclass(frozen=True)
class Change:
    path: str
    action: str  # update merge conflict add remove keep skip
    reason: str
    content: bytes | None = None  # what the file becomes (WRITES)
    mode: int | None = None
    ours: str | None = None  # digest of the file as planned on (None: absent)
    conflicts: int = 0


@dataclass
class Plan:
    arch_dir: Path
    base: versions.TemplateVersion
    theirs: versions.TemplateVersion
    answers: dict[str, Any]  # theirs, resolved (what the new record holds)
    answer_sources: dict[str, str]
    base_answers: dict[str, Any] = field(default_factory=dict)
    has_record: bool = True
    changes: list[Change] = field(default_factory=list)
    record_text: str = ""
    record_changed: bool = True
    notes: list[str] = field(default_factory=list)

    @property
    def conflicts(self) -> list[Change]:
        return [c for c in self.changes if c.action == "conflict"]

    @property
    def up_to_date(self) -> bool:
        return not self.changes and not self.record_changed


def path_answers(arch_dir: Path) -> dict[str, str]:
    """provider/category/architecture are the architecture's last three path levels."""
    parts = arch_dir.resolve().parts[-3:]
    if len(parts) < 3:
        raise UsageError(f"{arch_dir}: expected .../<provider>/<category>/<architecture>")
    return dict(zip(NAME_KINDS, parts, strict=True))


def check_arch_dir(arch_dir: Path) -> None:
    if arch_dir.is_symlink() or not arch_dir.is_dir():
        raise UsageError(f"{arch_dir}: not an architecture directory")
    leftovers = sorted(p.name for p in arch_dir.glob(STAGING_PREFIX + "*"))
    if leftovers:
        raise UpdateError(
            f"{arch_dir / leftovers[0]}: left by an interrupted update; its old/ holds the files "
            "that update had replaced and journal.json what it did: restore them, delete the "
            "directory, then run trainkit update again"
        )


def _read_ours(arch_dir: Path, rel: str) -> tuple[bytes, int] | None:
    path = arch_dir / rel
    for parent in Path(rel).parents:
        if str(parent) != "." and (arch_dir / parent).is_symlink():
            raise UpdateError(f"{arch_dir / parent}: is a symlink; update refuses to follow it")
    if not path.exists() and not path.is_symlink():
        return None
    if path.is_symlink() or not path.is_file():
        raise UpdateError(f"{path}: not a regular file; the template has a file there")
    info = path.stat()
    if info.st_size > MAX_FILE_BYTES:
        raise UpdateError(f"{path}: larger than {MAX_FILE_BYTES // 2**20} MiB; not a template file")
    return path.read_bytes(), stat.S_IMODE(info.st_mode)


def _text(data: bytes) -> str | None:
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _merged(
    rel: str, base: bytes, ours: bytes, theirs: bytes, label: str
) -> tuple[bytes, int, str]:
    """(content, conflicts, reason) of a line-wise merge; binary or huge files are not merged
    (ours is kept and it counts as one conflict)."""
    texts = [_text(data) for data in (base, ours, theirs)]
    if any(t is None for t in texts):
        return ours, 1, "binary file changed by you and by the template: kept yours"
    try:
        result = merge.merge3(texts[0], texts[1], texts[2], (OURS_LABEL, label))
    except ValueError as exc:
        return ours, 1, f"{exc}: kept yours"
    if result.conflicts:
        return (
            result.text.encode("utf-8"),
            result.conflicts,
            f"{result.conflicts} conflict(s): you and the template changed the same lines",
        )
    return result.text.encode("utf-8"), 0, "you and the template changed it: merged"


def _mode(ours: int, base: int, theirs: int) -> int:
    """The researcher's permissions, with the template's change of the executable bits."""
    if (base ^ theirs) & 0o111:
        return (ours & ~0o111) | (theirs & 0o111)
    return ours


def classify(arch_dir: Path, base: versions.Bake, theirs: versions.Bake) -> list[Change]:
    label = f"template {theirs.version.name}"
    changes = []
    for rel in sorted(set(base.files) | set(theirs.files)):
        b, t = base.files.get(rel), theirs.files.get(rel)
        if b is not None and t is not None and b[0] == t[0]:
            continue  # the template did not change it
        ours = _read_ours(arch_dir, rel)
        o_digest = record.digest(ours[0]) if ours else None
        if b is None:  # new in theirs
            if ours is None:
                changes.append(Change(rel, "add", "new in the template", t[0], t[1], None))
            elif ours[0] != t[0]:
                content, n, _ = _merged(rel, b"", ours[0], t[0], label)
                reason = "new in the template, and you have a different file"
                changes.append(
                    Change(rel, "conflict" if n else "merge", reason, content, ours[1], o_digest, n)
                )
        elif t is None:  # gone from theirs
            if ours is None:
                continue
            if ours[0] == b[0]:
                changes.append(Change(rel, "remove", "no longer in the template", ours=o_digest))
            else:
                changes.append(
                    Change(rel, "keep", "no longer in the template, but you edited it: kept",
                           ours=o_digest)
                )  # fmt: skip
        elif ours is None:
            changes.append(
                Change(rel, "skip", "you deleted it and the template changed it: left deleted")
            )
        elif ours[0] == b[0]:
            mode = _mode(ours[1], b[1], t[1])
            changes.append(Change(rel, "update", "changed by the template", t[0], mode, o_digest))
        elif ours[0] != t[0]:
            content, n, reason = _merged(rel, b[0], ours[0], t[0], label)
            action = "conflict" if n else "merge"
            mode = _mode(ours[1], b[1], t[1])
            changes.append(Change(rel, action, reason, content, mode, o_digest, n))
    return changes


def _answers(
    arch_dir: Path,
    rec: record.Record | None,
    base: versions.TemplateVersion,
    overrides: dict[str, str],
) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    """(base answers, theirs answers, where each answer came from)."""
    names = path_answers(arch_dir)
    for key, value in names.items():
        if key in overrides and overrides[key] != value:
            raise UsageError(
                f"{key}={overrides[key]}: the architecture's directory says {key} {value!r}; "
                "rename the directory instead"
            )
    sources: dict[str, str] = {}
    if rec is not None:
        base_answers = dict(rec.answers)
        sources |= {key: record.RECORD_NAME for key in base_answers}
        theirs_answers = base_answers | names | overrides
        sources |= {k: "directory" for k, v in names.items() if base_answers.get(k) != v}
    else:
        inferred = versions.infer_answers(base, arch_dir)
        base_answers = {key: value for key, (value, _) in inferred.items()}
        sources |= {key: where for key, (_, where) in inferred.items()}
        base_answers |= names
        sources |= {key: "directory" for key in names}
        base_answers |= overrides
        missing = [key for key in base.required_answers if key not in base_answers]
        if missing:
            raise UpdateError(
                f"{arch_dir}: cannot tell its {', '.join(missing)} from its files; pass "
                + " ".join(f"{key}=..." for key in missing)
            )
        theirs_answers = dict(base_answers)
    sources |= {key: "command line" for key in overrides}
    return base_answers, theirs_answers, sources


def _questions(version: versions.TemplateVersion) -> set[str]:
    try:
        known = json.loads((version.template_dir / "cookiecutter.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise versions.BakeError(f"template {version.name}: cookiecutter.json: {exc}") from None
    return {key for key in known if not key.startswith("_")}


def check_overrides(
    overrides: dict[str, str], base: versions.TemplateVersion, theirs: versions.TemplateVersion
) -> None:
    """KEY=VALUE must name a question of the old or the new template (never a private key)."""
    questions = _questions(base) | _questions(theirs)
    unknown = sorted(key for key in overrides if key not in questions)
    if unknown:
        raise UsageError(
            f"unknown question(s) {', '.join(unknown)}; the questions are "
            + ", ".join(sorted(questions))
        )


def _base_version(
    arch_dir: Path,
    rec: record.Record | None,
    theirs: versions.TemplateVersion,
    from_version: str | None,
    base_template: Path | None,
) -> versions.TemplateVersion:
    if base_template is not None:
        return versions.from_directory(base_template)
    if from_version is not None:
        return versions.by_name(from_version, theirs)
    if rec is not None:
        found = versions.by_hash(rec.template_hash, theirs)
        if found is None:
            raise versions.UnknownTemplateError(
                f"{arch_dir / record.RECORD_NAME}: made by template {rec.template_hash[:19]} "
                f"(trainkit {rec.trainkit_version or 'unknown'}), which this trainkit does not "
                "ship; pass --base-template DIR (that trainkit's trainkit/template/)"
            )
        return found
    found = versions.recognise(arch_dir)
    if found is None:
        shipped = ", ".join(v.name for v in versions.shipped()) or "none"
        raise versions.UnknownTemplateError(
            f"{arch_dir}: no {record.RECORD_NAME} and not recognisably made by a trainkit "
            f"release this one ships (templates: {shipped}); pass --from VERSION or "
            "--base-template DIR"
        )
    return found


def make_plan(
    arch_dir: Path,
    overrides: dict[str, str] | None = None,
    *,
    theirs: versions.TemplateVersion | None = None,
    from_version: str | None = None,
    base_template: Path | None = None,
) -> Plan:
    """Bake base and theirs (temp dirs) and decide every file's change; writes nothing."""
    arch_dir = Path(arch_dir)
    overrides = dict(overrides or {})
    check_arch_dir(arch_dir)
    theirs = theirs or versions.installed()
    rec = record.read_record(arch_dir)
    base = _base_version(arch_dir, rec, theirs, from_version, base_template)
    check_overrides(overrides, base, theirs)
    base_answers, theirs_answers, sources = _answers(arch_dir, rec, base, overrides)
    plan = Plan(arch_dir, base, theirs, theirs_answers, sources, base_answers, rec is not None)
    if rec is not None and base.hash == theirs.hash and theirs_answers == rec.answers:
        plan.record_changed = False  # same template, same answers: nothing can change
        plan.answers = dict(rec.answers)
        return plan
    base_bake = versions.bake(base, base_answers)
    theirs_bake = versions.bake(theirs, theirs_answers)
    if rec is not None and rec.files:
        drift = sorted(
            rel for rel, (data, _) in base_bake.files.items()
            if rel in rec.files and record.digest(data) != rec.files[rel]
        )  # fmt: skip
        if drift:
            plan.notes.append(
                f"re-baking template {base.name} does not reproduce {', '.join(drift)} as "
                "generated (another cookiecutter/Jinja version?): those may merge with conflicts"
            )
    plan.changes = classify(arch_dir, base_bake, theirs_bake)
    plan.answers = theirs_bake.answers
    new_record = record.Record(
        template_hash=theirs.hash,
        answers=theirs_bake.answers,
        trainkit_version=theirs.name,
        files={rel: record.digest(data) for rel, (data, _) in theirs_bake.files.items()},
    )
    plan.record_text = record.to_json(new_record)
    current = arch_dir / record.RECORD_NAME
    plan.record_changed = not (
        current.is_file() and current.read_text(encoding="utf-8") == plan.record_text
    )
    return plan
