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
    """One problem at `path`. `related` names the other side of a conflict (the address a node
    collides with, the first use of a duplicate); the loader fills in its position too."""

    path: Path
    message: str
    line: int | None = None
    column: int | None = None
    severity: Literal["error", "warning"] = "error"
    related: Path | None = None
    related_position: tuple[int, int] | None = None

    def render(self, filename: str) -> str:
        where = filename if self.line is None else f"{filename}:{self.line}:{self.column or 1}"
        text = f"{where}: {format_path(self.path)}: {self.message}"
        if self.related is not None:
            other = f"{filename}:{self.related_position[0]}:{self.related_position[1]}" if self.related_position else filename
            text += f" (see {other}: {format_path(self.related)})"
        return text

    def as_dict(self, filename: str) -> dict[str, Any]:
        out: dict[str, Any] = {
            "file": filename,
            "line": self.line,
            "column": self.column,
            "path": format_path(self.path),
            "message": self.message,
            "severity": self.severity,
        }
        if self.related is not None:
            line, column = self.related_position or (None, None)
            out["related"] = {"path": format_path(self.related), "line": line, "column": column}
        return out


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
