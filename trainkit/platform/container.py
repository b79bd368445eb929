"""The built train container as the backend reaches it: files in it (`docker cp`) and its log.

`HostContainer`: a run without an engine; the container's paths map to directories of the run
(its mounts: /minio, /datasets, /workspace/output; the WORKDIR; the image's files replayed by
image.py), and its log is the file the run's output is appended to (like `docker logs`, it
spans every start of the container). `EngineContainer`: a real container of Docker or Podman,
through `cp` and `logs --tail`.
"""

from __future__ import annotations

import posixpath
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

from trainkit.platform.local import PlatformError


def tail_lines(text: str, tail: int) -> str:
    """The last `tail` lines of a log, as `docker logs --tail` gives them."""
    lines = text.splitlines(keepends=True)
    return "".join(lines[-tail:]) if tail > 0 else "".join(lines)


class HostContainer:
    """A container that is a set of directories of this machine (see module)."""

    def __init__(self, mounts: Mapping[str, Path], log_file: Path, root: Path | None = None):
        self.mounts = {posixpath.normpath(k): Path(v) for k, v in mounts.items()}
        self.root = root
        self.log_file = log_file

    def host_path(self, container_path: str) -> Path | None:
        """Where `container_path` lives on this machine, or None (not part of the emulation)."""
        path = posixpath.normpath(posixpath.join("/", str(container_path)))
        for mount in sorted(self.mounts, key=len, reverse=True):
            if path == mount or path.startswith(mount.rstrip("/") + "/"):
                rel = posixpath.relpath(path, mount)
                return self.mounts[mount] if rel == "." else self.mounts[mount] / rel
        if self.root is None:
            return None
        rel = path.lstrip("/")
        return self.root / rel if rel else self.root

    def read(self, container_path: str) -> bytes | None:
        host = self.host_path(container_path)
        if host is None or not host.is_file():
            return None
        return host.read_bytes()

    def write(self, container_dir: str, source: Path) -> None:
        """`docker cp SOURCE CONTAINER:DIR` of one file into an existing directory."""
        host = self.host_path(container_dir)
        if host is None or not host.is_dir():
            raise PlatformError(f"docker cp: no directory {container_dir} in the container")
        target = host / source.name
        partial = target.with_name(f".{target.name}.partial")
        shutil.copyfile(source, partial)
        partial.replace(target)

    def logs(self, tail: int) -> str:
        try:
            text = self.log_file.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""
        return tail_lines(text, tail)


class EngineContainer:
    """A container of a real engine (trainkit.engine.Engine), by name."""

    def __init__(self, engine, name: str) -> None:
        self.engine = engine
        self.name = name

    def read(self, container_path: str) -> bytes | None:
        with tempfile.TemporaryDirectory(prefix="trainkit-cp-") as tmp:
            target = Path(tmp) / "file"
            proc = self.engine.run(
                ["cp", f"{self.name}:{container_path}", str(target)],
                quiet=True,
                capture_output=True,
            )
            if proc.returncode != 0 or not target.is_file():
                return None
            return target.read_bytes()

    def write(self, container_dir: str, source: Path) -> None:
        proc = self.engine.run(
            ["cp", str(source), f"{self.name}:{container_dir}"], capture_output=True, text=True
        )
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise PlatformError(f"{self.engine.name} cp into {self.name}: {last}")

    def logs(self, tail: int) -> str:
        argv = ["logs", *(["--tail", str(tail)] if tail > 0 else []), self.name]
        proc = subprocess.run(
            [self.engine.executable, *argv],
            env=self.engine.command_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            check=False,
        )
        return proc.stdout.decode("utf-8", "replace")
