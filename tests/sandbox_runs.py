"""For tests that run the pipeline in-process against the sandbox: a starter project and an
event sink that keeps what the engine reports."""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path
from typing import Any


def starter_project(root: Path, blueprint: str = "oci-free-tier") -> Path:
    """Copy a built-in blueprint to ROOT/tierzero.yaml; return its path."""
    root.mkdir(parents=True, exist_ok=True)
    with resources.as_file(resources.files("tierzero.spec").joinpath(f"blueprints/{blueprint}.yaml")) as path:
        shutil.copy(path, root / "tierzero.yaml")
    return root / "tierzero.yaml"


class Events(list):
    """An EventSink (`Session(..., emit=events)`) that keeps every event as a dict."""

    def __call__(self, kind: str, **fields: Any) -> None:
        self.append({"event": kind, **fields})

    def of(self, kind: str, step_prefix: str = "") -> list[dict[str, Any]]:
        return [e for e in self if e["event"] == kind and str(e.get("step", "")).startswith(step_prefix)]

    def started(self) -> list[str]:
        return [e["step"] for e in self.of("step_started")]
