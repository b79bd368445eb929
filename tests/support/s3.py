"""s3fs mounts as the tests and benchmarks see them: find, inspect and always remove them."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit


def mounted_fstype(path: Path) -> str | None:
    """The fstype mounted exactly at `path` (per /proc/self/mounts), or None."""
    target = os.path.realpath(path)
    found = None
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        mountpoint = fields[1].encode().decode("unicode_escape")
        if mountpoint == target:
            found = fields[2]
    return found


def mounts_below(root: Path) -> list[Path]:
    """Mount points at or below `root` (deepest first)."""
    prefix = os.path.realpath(root)
    found = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        mountpoint = line.split()[1].encode().decode("unicode_escape")
        if mountpoint == prefix or mountpoint.startswith(prefix + os.sep):
            found.append(Path(mountpoint))
    return sorted(set(found), key=lambda p: len(p.parts), reverse=True)


def s3fs_pids(mountpoint: Path) -> list[int]:
    """Live s3fs processes serving `mountpoint` (found by their command line)."""
    target = os.path.realpath(mountpoint).encode()
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"s3fs") and target in argv:
            pids.append(int(proc.name))
    return pids


def unmount(mountpoint: Path) -> None:
    """Unmount (lazily if busy), stop the s3fs behind it, and wait until both are gone."""
    pids = s3fs_pids(mountpoint)
    if mounted_fstype(mountpoint):
        fusermount = shutil.which("fusermount") or shutil.which("fusermount3")
        commands = [[fusermount, "-u", str(mountpoint)]] if fusermount else []
        commands += [["umount", str(mountpoint)], ["umount", "-l", str(mountpoint)]]
        for command in commands:
            subprocess.run(command, capture_output=True, check=False)
            if not mounted_fstype(mountpoint):
                break
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
        time.sleep(0.1)
    for pid in pids:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    assert not mounted_fstype(mountpoint), f"{mountpoint} is still mounted"


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def describe_request(method: str, target: str, bucket: str, pages: dict[str, int]) -> str:
    """One S3 request (method, path?query of moto's log) as a comparable line:
    `LIST2 max-keys=N prefix=P page=K` for ListObjectsV2 (K counted from the continuation
    tokens already in `pages`), `LIST1 max-keys=N prefix=P` for a v1 listing (what s3fs sends:
    max-keys=2 to resolve a folder, 1000 for a readdir), else `METHOD key`."""
    split = urlsplit(target)
    key = split.path.removeprefix(f"/{bucket}").lstrip("/")
    query = {k: v[0] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
    if method == "GET" and not key and query:
        if query.get("list-type") == "2":
            page = pages.setdefault(query.get("continuation-token", ""), len(pages))
            known = {"list-type", "prefix", "delimiter", "max-keys", "encoding-type"}
            extra = set(query) - known - {"continuation-token"}
            delimiter = query.get("delimiter")
            assert delimiter == "/" and not extra, f"unexpected ListObjectsV2 form: {target}"
            return (
                f"LIST2 max-keys={query.get('max-keys')} prefix={query.get('prefix')} page={page}"
            )
        return f"LIST1 max-keys={query.get('max-keys')} prefix={query.get('prefix')}"
    return f"{method} {key}"
