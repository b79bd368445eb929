"""The image a Dockerfile makes from a build context, as files, for runs without an engine.

Without Docker or Podman, `trainkit run --runtime platform` still needs the image's file
system: what the WORKDIR holds is what the Dockerfile COPYs there, not the whole build context
(a file the context has but the Dockerfile does not copy is missing on the platform too). This
module replays the Dockerfile's FROM/WORKDIR/ENV/COPY/ADD instructions (parsed with
dockerfile-parse, as the backend parses it) into a directory: `<root>/<absolute path>`. RUN
instructions are not replayed (the host's Python environment stands in for what they install),
and what needs a real builder is refused with one line: `COPY --from`, remote or archive ADD,
variables in COPY/WORKDIR, sources outside the context, a .dockerignore.
"""

from __future__ import annotations

import fnmatch
import json
import posixpath
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from dockerfile_parse import DockerfileParser

from trainkit.errors import TrainkitError

ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".txz")


class ImageError(TrainkitError):
    """The Dockerfile needs a real image builder (or the build would fail); one line."""


@dataclass
class Image:
    root: Path  # host directory standing for the image's /
    workdir: str = "/"  # the last WORKDIR (container path)
    env: dict[str, str] = field(default_factory=dict)
    entrypoint: list[str] | str | None = None

    def host(self, container_path: str) -> Path:
        """The file of the image at `container_path` (inside root, `..` cannot leave it)."""
        rel = posixpath.normpath(posixpath.join("/", container_path)).lstrip("/")
        return self.root / rel if rel not in ("", ".") else self.root


def last_workdir(dockerfile: Path) -> str:
    """The WORKDIR in effect at the end of the Dockerfile (the container's cwd), `/` if none."""
    workdir = "/"
    try:
        structure = DockerfileParser(path=str(dockerfile)).structure
    except Exception:  # the build reports it
        return workdir
    for item in structure:
        if item["instruction"].upper() == "FROM":
            workdir = "/"
        elif item["instruction"].upper() == "WORKDIR":
            workdir = posixpath.normpath(posixpath.join(workdir, item["value"].strip()))
    return workdir


def _words(value: str, where: str) -> tuple[list[str], list[str]]:
    """(flags, operands) of a COPY/ADD value, shell or JSON form."""
    if value.lstrip().startswith("["):
        try:
            items = json.loads(value)
        except ValueError:
            raise ImageError(f"{where}: malformed JSON form {value!r}") from None
        if not all(isinstance(i, str) for i in items):
            raise ImageError(f"{where}: malformed JSON form {value!r}")
        return [], items
    words = value.split()
    flags = [w for w in words if w.startswith("--")]
    return flags, [w for w in words if not w.startswith("--")]


def _matches(context: Path, pattern: str, where: str) -> list[Path]:
    rel = posixpath.normpath(pattern.lstrip("/")) if pattern not in (".", "./") else "."
    if rel == ".." or rel.startswith("../"):
        raise ImageError(f"{where}: source {pattern!r} is outside the build context")
    if not any(c in rel for c in "*?["):
        path = context / rel if rel != "." else context
        return [path] if path.exists() or path.is_symlink() else []
    parts = rel.split("/")
    found = [context]
    for part in parts:
        found = [
            child
            for base in found
            if base.is_dir()
            for child in sorted(base.iterdir())
            if fnmatch.fnmatchcase(child.name, part)
        ]
    return found


def _copy_into(source: Path, target: Path) -> None:
    if source.is_symlink():
        raise ImageError(f"{source}: a symlink in the build context; run with --engine")
    if source.is_dir():
        target.mkdir(parents=True, exist_ok=True)
        for child in sorted(source.iterdir()):
            _copy_into(child, target / child.name)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_dir():
        target = target / source.name
    shutil.copy2(source, target)


def replay(dockerfile: Path, context: Path, root: Path) -> Image:
    """Write the image's files below `root` (emptied first) and return what it knows."""
    if (context / ".dockerignore").exists():
        raise ImageError(f"{context}/.dockerignore: only a real builder honours it; use --engine")
    try:
        structure = DockerfileParser(path=str(dockerfile)).structure
    except Exception as exc:  # dockerfile-parse raises assorted errors on garbage
        raise ImageError(f"{dockerfile}: cannot parse: {exc}") from None
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    image = Image(root)
    for item in structure:
        instruction = item["instruction"].upper()
        value = item["value"].strip()
        where = f"{dockerfile.name} line {item['startline'] + 1}"
        if instruction == "FROM":  # a new stage: only the last one is the image
            shutil.rmtree(root)
            root.mkdir()
            image = Image(root)
        elif instruction == "WORKDIR":
            if "$" in value:
                raise ImageError(f"{where}: WORKDIR with a variable; run with --engine")
            image.workdir = posixpath.normpath(posixpath.join(image.workdir, value))
            image.host(image.workdir).mkdir(parents=True, exist_ok=True)
        elif instruction == "ENV":
            image.env.update(_env_pairs(value, where))
        elif instruction == "ENTRYPOINT":
            try:
                image.entrypoint = json.loads(value)
            except ValueError:
                image.entrypoint = value
        elif instruction in ("COPY", "ADD"):
            _replay_copy(instruction, value, where, context, image)
    return image


def _env_pairs(value: str, where: str) -> dict[str, str]:
    if "$" in value:
        raise ImageError(f"{where}: ENV with a variable; run with --engine")
    words = shlex.split(value)
    if words and "=" not in words[0]:  # legacy `ENV KEY value with spaces`
        return {words[0]: " ".join(words[1:])}
    return dict(word.split("=", 1) for word in words if "=" in word)


def _replay_copy(instruction: str, value: str, where: str, context: Path, image: Image) -> None:
    flags, operands = _words(value, where)
    if any(flag.startswith("--from") for flag in flags):
        raise ImageError(f"{where}: {instruction} --from needs a real builder; use --engine")
    if len(operands) < 2:
        raise ImageError(f"{where}: {instruction} needs a source and a destination")
    *sources, dest = operands
    if "$" in value:
        raise ImageError(f"{where}: {instruction} with a variable; run with --engine")
    dest_abs = posixpath.normpath(posixpath.join(image.workdir, dest))
    matched: list[Path] = []
    for source in sources:
        if instruction == "ADD" and ("://" in source or source.endswith(ARCHIVE_SUFFIXES)):
            raise ImageError(f"{where}: ADD {source!r} needs a real builder; use --engine")
        found = _matches(context, source, where)
        if not found and not any(c in source for c in "*?["):
            raise ImageError(
                f"{where}: the image build fails: {instruction} source {source!r} is not in "
                "the build context"
            )
        matched += found
    if not matched:
        raise ImageError(f"{where}: the image build fails: {instruction} copies nothing")
    target = image.host(dest_abs)
    into_dir = dest.endswith("/") or len(matched) > 1 or target.is_dir()
    for source in matched:
        if source.is_dir():
            _copy_into(source, target)
        else:
            _copy_into(source, target / source.name if into_dir else target)
