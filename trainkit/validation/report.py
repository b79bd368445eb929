"""Findings: one record per problem, printed as `ERROR <path-in-zip>: <message>`."""

from __future__ import annotations

import json
import unicodedata
from dataclasses import asdict, dataclass, field

ERROR = "ERROR"
WARNING = "WARNING"
NOTE = "NOTE"  # information about what the platform will do; never a problem

# Path used for findings about the archive (or directory) as a whole.
ARCHIVE = "."


@dataclass(frozen=True)
class Finding:
    level: str  # ERROR, WARNING or NOTE
    path: str  # path inside the ZIP (or relative to the validated directory)
    message: str

    def __str__(self) -> str:
        """One terminal line whatever the names hold: control, bidi and separator characters
        are escaped, so an entry named "x\nOK: ..." or holding ESC sequences cannot forge a
        line or rewrite the screen."""
        return f"{self.level} {escape(self.path)}: {escape(self.message)}"


_ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})


def escape(text: str) -> str:
    """`text` with every control/format/separator character as a Python escape (\\n, \\x1b,
    \\u202e)."""
    if text.isprintable():
        return text
    return "".join(
        c.encode("unicode_escape").decode("ascii")
        if unicodedata.category(c) in _ESCAPED_CATEGORIES
        else c
        for c in text
    )


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)

    def error(self, path: str, message: str) -> None:
        self.findings.append(Finding(ERROR, path, message))

    def warning(self, path: str, message: str) -> None:
        self.findings.append(Finding(WARNING, path, message))

    def note(self, path: str, message: str) -> None:
        self.findings.append(Finding(NOTE, path, message))

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.level == ERROR]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.level == WARNING]

    @property
    def ok(self) -> bool:
        return not self.errors

    def lines(self) -> list[str]:
        return [str(f) for f in self.findings]

    def to_json(self) -> str:
        return json.dumps(
            {
                "ok": self.ok,
                "errors": len(self.errors),
                "warnings": len(self.warnings),
                "findings": [asdict(f) for f in self.findings],
            },
            indent=2,
        )
