"""The template versions `trainkit update` can bake: the installed template and the earlier
releases shipped in history/<version>/ (manifest.json says what each holds), and baking one
in a sandbox.

A bake never touches anything but its own temp directory: the template (and, for 0.1.0, the
runtime directory its post-gen hook copies from, `common/` beside `template/` as in that
release's checkout) is copied into the sandbox first, cookiecutter writes below the sandbox,
replays and clones go there, and the hooks' output (their "next steps") is captured, not
shown. The shipped hooks were read for this: they write only below cookiecutter's output
directory (history/0.1.0/PROVENANCE.md).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from cookiecutter import replay
from cookiecutter.exceptions import CookiecutterException, FailedHookException
from cookiecutter.main import cookiecutter

from trainkit import paths, vendor
from trainkit.errors import TrainkitError
from trainkit.update import record

HISTORY_DIR = Path(__file__).resolve().with_name("history")
MANIFEST = "manifest.json"
SANDBOX_TEMPLATE = "template"  # cookiecutter names the replay file after this directory


class UnknownTemplateError(TrainkitError):
    """No template version trainkit can bake matches what the architecture asks for."""


class BakeError(TrainkitError):
    """Baking a template version failed (bad answers, a hook refused them)."""


@dataclass(frozen=True)
class InferRule:
    """How a record-less architecture's answer is read back from one of its files: the
    first match of `pattern` (multiline) in `file`, group `group`, mapped through `values`;
    or, with `exists`, whether that file exists."""

    answer: str
    file: str
    pattern: str | None = None
    group: int = 1
    values: dict[str, Any] = field(default_factory=dict)
    exists: bool = False


@dataclass(frozen=True)
class TemplateVersion:
    name: str  # the trainkit version that shipped it, or what the user called it
    template_dir: Path
    hash: str
    # directories copied next to the template in the sandbox (name -> source)
    beside: tuple[tuple[str, Path], ...] = ()
    writes_record: bool = True
    # files every architecture of this version has and later ones do not: how a record-less
    # architecture is recognised
    signature_files: tuple[str, ...] = ()
    infer: tuple[InferRule, ...] = ()
    required_answers: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.name} ({self.hash[:19]})"


@dataclass(frozen=True)
class Bake:
    """One baked architecture: its files (relative path -> bytes, mode) and resolved answers."""

    version: TemplateVersion
    answers: dict[str, Any]
    files: dict[str, tuple[bytes, int]]


def installed() -> TemplateVersion:
    return TemplateVersion(
        vendor.RUNTIME_VERSION, paths.TEMPLATE_DIR, record.template_hash(paths.TEMPLATE_DIR)
    )


def from_directory(template_dir: Path) -> TemplateVersion:
    """A template the user points at (`--base-template DIR`, e.g. a checkout of an old
    trainkit); its hooks run as with `cookiecutter DIR`."""
    template_dir = Path(template_dir).resolve()
    if not (template_dir / "cookiecutter.json").is_file():
        raise UnknownTemplateError(
            f"{template_dir}: not a cookiecutter template (no cookiecutter.json)"
        )
    return TemplateVersion(str(template_dir), template_dir, record.template_hash(template_dir))


def _load_entry(entry: Path) -> TemplateVersion:
    manifest = json.loads((entry / MANIFEST).read_text(encoding="utf-8"))
    return TemplateVersion(
        name=manifest["trainkit_version"],
        template_dir=entry / manifest["template"],
        hash=manifest["template_hash"],
        beside=tuple((name, entry / name) for name in manifest.get("beside_template", ())),
        writes_record=manifest["writes_record"],
        signature_files=tuple(manifest.get("signature_files", ())),
        infer=tuple(InferRule(**rule) for rule in manifest.get("infer", ())),
        required_answers=tuple(manifest.get("required_answers", ())),
    )


@cache
def shipped() -> tuple[TemplateVersion, ...]:
    """The earlier releases' templates in history/, oldest first (by directory name)."""
    if not HISTORY_DIR.is_dir():
        return ()
    entries = sorted(p for p in HISTORY_DIR.iterdir() if (p / MANIFEST).is_file())
    return tuple(_load_entry(entry) for entry in entries)


def known(theirs: TemplateVersion | None = None) -> tuple[TemplateVersion, ...]:
    return (*shipped(), theirs or installed())


def by_hash(template_hash: str, theirs: TemplateVersion | None = None) -> TemplateVersion | None:
    for version in known(theirs):
        if version.hash == template_hash:
            return version
    return None


def by_name(name: str, theirs: TemplateVersion | None = None) -> TemplateVersion:
    for version in known(theirs):
        if version.name == name:
            return version
    names = ", ".join(v.name for v in known(theirs))
    raise UnknownTemplateError(f"--from {name}: this trainkit ships templates {names}")


def recognise(arch_dir: Path) -> TemplateVersion | None:
    """The shipped pre-record version whose signature files the architecture has."""
    matches = [
        version
        for version in shipped()
        if not version.writes_record
        and version.signature_files
        and any((arch_dir / rel).is_file() for rel in version.signature_files)
    ]
    return matches[-1] if matches else None


def infer_answers(version: TemplateVersion, arch_dir: Path) -> dict[str, tuple[Any, str]]:
    """answer -> (value, how it was found) for the answers `version`'s rules can read back."""
    found: dict[str, tuple[Any, str]] = {}
    for rule in version.infer:
        if rule.answer in found:
            continue
        path = arch_dir / rule.file
        if rule.exists:
            found[rule.answer] = (
                path.is_file(),
                f"{rule.file} {'exists' if path.is_file() else 'absent'}",
            )
            continue
        if not path.is_file() or path.stat().st_size > 1024 * 1024:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        match = re.search(rule.pattern or "", text, re.MULTILINE)
        if match:
            value = match.group(rule.group)
            found[rule.answer] = (rule.values.get(value, value), f"read from {rule.file}")
    return found


@contextlib.contextmanager
def captured_output(sink: Path) -> Iterator[None]:
    """File descriptors 1 and 2 go to `sink` (hooks are subprocesses writing to them)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    try:
        with sink.open("wb") as fh:
            os.dup2(fh.fileno(), 1)
            os.dup2(fh.fileno(), 2)
            try:
                yield
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])


@contextlib.contextmanager
def _environ(**values: str) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _ignore(_dir: str, names: list[str]) -> list[str]:
    return [name for name in names if record.ignored(name)]


def _last_line(path: Path) -> str:
    lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def bake(version: TemplateVersion, answers: dict[str, Any]) -> Bake:
    """Bake `version` with `answers` in a sandbox; returns the architecture's files."""
    with tempfile.TemporaryDirectory(prefix="trainkit-update-bake-") as tmp:
        sandbox = Path(tmp)
        template = sandbox / SANDBOX_TEMPLATE
        try:
            shutil.copytree(version.template_dir, template, ignore=_ignore)
            for name, source in version.beside:
                shutil.copytree(source, sandbox / name, ignore=_ignore)
        except OSError as exc:
            raise BakeError(f"template {version.name}: cannot read it: {exc}") from None
        out, replays, log = sandbox / "out", sandbox / "replay", sandbox / "hooks.log"
        cc_logger = logging.getLogger("cookiecutter")
        level = cc_logger.level
        cc_logger.setLevel(logging.CRITICAL)  # a failed hook's traceback; its one line says it
        try:
            with captured_output(log), _environ(PWD=str(sandbox)):
                cookiecutter(
                    str(template),
                    no_input=True,
                    extra_context=dict(answers),
                    output_dir=str(out),
                    default_config={"replay_dir": str(replays), "cookiecutters_dir": str(sandbox)},
                )
        except FailedHookException:
            raise BakeError(f"template {version.name}: {_last_line(log)}") from None
        except (CookiecutterException, ValueError, OSError) as exc:
            raise BakeError(f"template {version.name}: {exc}") from None
        finally:
            cc_logger.setLevel(level)
        context = replay.load(str(replays), SANDBOX_TEMPLATE)["cookiecutter"]
        resolved = {k: v for k, v in context.items() if not k.startswith("_")}
        arch = (
            out
            / str(resolved["provider"])
            / str(resolved["category"])
            / str(resolved["architecture"])
        )
        if not arch.is_dir():
            raise BakeError(f"template {version.name}: made no {arch.relative_to(out)}")
        files = {
            rel: (path.read_bytes(), stat.S_IMODE(path.stat().st_mode))
            for rel, path in record.tree_files(arch)
        }
        return Bake(version, resolved, files)
