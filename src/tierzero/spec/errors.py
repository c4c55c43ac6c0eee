"""Spec problems: each names the YAML path, the file position, what is wrong and what to do."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from tierzero.errors import InputError

Path = tuple[str | int, ...]


def format_path(path: Path) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(document)"


@dataclass(frozen=True)
class Problem:
    path: Path
    message: str
    line: int | None = None
    column: int | None = None
    severity: Literal["error", "warning"] = "error"

    def render(self, filename: str) -> str:
        where = filename if self.line is None else f"{filename}:{self.line}:{self.column or 1}"
        return f"{where}: {format_path(self.path)}: {self.message}"

    def as_dict(self, filename: str) -> dict[str, Any]:
        return {
            "file": filename,
            "line": self.line,
            "column": self.column,
            "path": format_path(self.path),
            "message": self.message,
            "severity": self.severity,
        }


@dataclass
class SpecError(InputError):
    """The spec is invalid. Carries every problem found, not just the first."""

    filename: str
    problems: list[Problem] = field(default_factory=list)

    def __post_init__(self) -> None:
        count = len(self.problems)
        super().__init__(f"{self.filename}: {count} problem{'s' if count != 1 else ''} in the spec")

    def lines(self) -> list[str]:
        return [p.render(self.filename) for p in self.problems] + [self.message]
