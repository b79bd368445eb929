"""ZIP safety, checked from the central directory before anything is extracted, and an
extractor that enforces the sizes while reading (headers are not trusted)."""

from __future__ import annotations

import re
import stat
import unicodedata
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from trainkit.validation.report import ARCHIVE, Report
from trainkit_runtime.values import control_characters

MiB = 1024 * 1024
_CHUNK = 64 * 1024
_DRIVE = re.compile(r"^[A-Za-z]:")
_NESTED_ARCHIVE_SUFFIXES = (".zip", ".jar", ".whl", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z")
_SUPPORTED_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}


@dataclass(frozen=True)
class Limits:
    """A template ZIP is a few source files; these limits are generous for that."""

    max_entries: int = 5_000
    max_total_bytes: int = 512 * MiB
    max_entry_bytes: int = 256 * MiB
    max_ratio: float = 100.0  # uncompressed : compressed, per entry
    ratio_min_bytes: int = 1 * MiB  # small files may compress well; only bigger ones count
    large_file_bytes: int = 10 * MiB  # warn: a template should not carry data or weights


DEFAULT_LIMITS = Limits()


def _mode(info: zipfile.ZipInfo) -> int:
    return (info.external_attr >> 16) & 0xFFFF


def name_problem(name: str) -> str | None:
    """Why an entry name (ZIP member or file below a validated directory) is refused."""
    if not name or name == "/":
        return "empty entry name"
    if bad := control_characters(name):
        return (
            "entry name contains control, bidi or line-separator characters "
            f"({', '.join(bad[:5])}); it can hide or forge what a listing shows"
        )
    if "\\" in name:
        return "entry name contains a backslash (Windows path separator)"
    if _DRIVE.match(name):
        return "entry name starts with a drive letter"
    if name.startswith("/"):
        return "absolute path"
    if ".." in name.rstrip("/").split("/"):
        return "path contains '..' and would extract outside the target directory (zip slip)"
    return None


def name_key(name: str) -> str:
    """What two names collide on somewhere: Unicode NFC (macOS normalises NFD names) and case
    folding (Windows, macOS: case-insensitive file systems)."""
    return unicodedata.normalize("NFC", name.rstrip("/")).casefold()


def check_prefix(zf: zipfile.ZipFile, report: Report) -> bool:
    """True when the archive starts with its first local header: data in front of it (another
    archive, a script) is what a different unzip tool might read instead."""
    infos = zf.infolist()
    first = min((info.header_offset for info in infos), default=0)
    fp = zf.fp
    if fp is None:
        return True
    position = fp.tell()
    try:
        fp.seek(0)
        head = fp.read(4)
    finally:
        fp.seek(position)
    if first > 0 or (infos and head != b"PK\x03\x04"):
        report.error(
            ARCHIVE,
            f"{first} bytes of data before the first local header (a second archive or a script "
            "hidden in front); other unzip tools may read that instead",
        )
        return False
    return True


def check_entries(zf: zipfile.ZipFile, report: Report, limits: Limits = DEFAULT_LIMITS) -> bool:
    """Check every central-directory entry; True when the archive is safe to extract."""
    infos = zf.infolist()
    if len(infos) > limits.max_entries:
        report.error(
            ARCHIVE, f"archive has {len(infos)} entries, more than the limit {limits.max_entries}"
        )
        return False
    if not infos:
        report.error(ARCHIVE, "archive is empty")
        return False

    safe = check_prefix(zf, report)
    seen: dict[str, str] = {}
    folded: dict[str, str] = {}
    total = 0
    for info in infos:
        name = info.filename
        problem = name_problem(name)
        if problem:
            report.error(name, problem)
            safe = False
            continue
        key = name.rstrip("/")
        if key in seen:
            report.error(name, "duplicate entry name")
            safe = False
            continue
        seen[key] = name
        twin = folded.get(name_key(name))
        if twin is not None:
            report.error(
                name,
                f"same name as {twin!r} after Unicode normalisation (NFC) and case folding; "
                "they collide when extracted on macOS or Windows, and look alike everywhere",
            )
            safe = False
            continue
        folded[name_key(name)] = name

        mode = _mode(info)
        if stat.S_ISLNK(mode):
            report.error(name, "symlink entry; symlinks are not allowed in a template ZIP")
            safe = False
            continue
        if stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            report.error(name, f"special file entry (mode {oct(mode)}); only files and dirs")
            safe = False
            continue
        if info.flag_bits & 0x1:
            report.error(name, "encrypted entry; the platform cannot read it")
            safe = False
            continue
        if info.compress_type not in _SUPPORTED_METHODS:
            report.error(name, f"unsupported compression method {info.compress_type}")
            safe = False
            continue
        if info.is_dir():
            continue

        size = info.file_size
        total += size
        if size > limits.max_entry_bytes:
            report.error(
                name, f"uncompressed size {size} bytes exceeds the limit {limits.max_entry_bytes}"
            )
            safe = False
        elif size >= limits.ratio_min_bytes and size > limits.max_ratio * max(
            info.compress_size, 1
        ):
            ratio = size / max(info.compress_size, 1)
            report.error(
                name,
                f"compression ratio {ratio:.0f}:1 exceeds {limits.max_ratio:.0f}:1 "
                "(possible zip bomb)",
            )
            safe = False
        elif size > limits.large_file_bytes:
            report.warning(
                name,
                f"large file ({size / MiB:.1f} MiB); datasets and weights do not belong in "
                "a template",
            )
        if PurePosixPath(name).suffix.lower() in _NESTED_ARCHIVE_SUFFIXES:
            report.warning(name, "nested archive; the platform does not unpack it")

    if total > limits.max_total_bytes:
        report.error(
            ARCHIVE,
            f"total uncompressed size {total} bytes exceeds the limit {limits.max_total_bytes}",
        )
        safe = False
    return safe


def extract(
    zf: zipfile.ZipFile, dest: Path, report: Report, limits: Limits = DEFAULT_LIMITS
) -> bool:
    """Extract into `dest` (an empty temp dir), enforcing sizes while reading.

    Call only after check_entries() returned True. Returns False (with an ERROR) on the first
    entry whose data disagrees with its header or breaks a limit.
    """
    root = dest.resolve()
    total = 0
    for info in zf.infolist():
        name = info.filename
        target = root.joinpath(*name.rstrip("/").split("/")).resolve()
        if root not in target.parents:
            report.error(name, "entry would extract outside the target directory")
            return False
        try:
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            written = 0
            with zf.open(info) as src, target.open("xb") as out:
                while chunk := src.read(_CHUNK):
                    written += len(chunk)
                    total += len(chunk)
                    if written > info.file_size or written > limits.max_entry_bytes:
                        report.error(name, "entry holds more data than its header declares")
                        return False
                    if total > limits.max_total_bytes:
                        report.error(
                            ARCHIVE,
                            f"extracted data exceeds the limit {limits.max_total_bytes} bytes",
                        )
                        return False
                    out.write(chunk)
        except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, NotImplementedError) as exc:
            report.error(name, f"cannot extract: {exc}")
            return False
    return True
