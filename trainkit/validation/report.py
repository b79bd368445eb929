"""Findings: one record per problem, printed as `ERROR <path-in-zip>: <message>`."""

from __future__ import annotations

import json
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
        return f"{self.level} {self.path}: {self.message}"


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
