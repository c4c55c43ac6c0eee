"""For tests that run the pipeline in-process against the sandbox: a starter project and an
event sink that keeps what the engine reports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from spec_builder import write_project


def starter_project(root: Path, blueprint: str = "oci-free-tier") -> Path:
    """Copy a built-in blueprint to ROOT/tierzero.yaml; return its path."""
    return write_project(root, blueprint)


class Events(list):
    """An EventSink (`Session(..., emit=events)`) that keeps every event as a dict."""

    def __call__(self, kind: str, **fields: Any) -> None:
        self.append({"event": kind, **fields})

    def of(self, kind: str, step_prefix: str = "") -> list[dict[str, Any]]:
        return [e for e in self if e["event"] == kind and str(e.get("step", "")).startswith(step_prefix)]

    def started(self) -> list[str]:
        return [e["step"] for e in self.of("step_started")]
