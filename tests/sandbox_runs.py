"""For tests that run the pipeline in-process against the sandbox: a starter project and an
event sink that keeps what the engine reports."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

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


def deploy_process(spec: Path, kill_when: Callable[[dict[str, Any]], bool] | None = None) -> tuple[bool, list[dict[str, Any]]]:
    """Run `tierzero deploy --target sandbox --json` as its own process and read its events.
    With KILL_WHEN: SIGKILL the process the moment it returns True for an event. Returns
    (killed, events); a run that was not killed must exit 0."""
    proc = subprocess.Popen([sys.executable, "-m", "tierzero", "deploy", "-f", str(spec), "--target", "sandbox", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    events: list[dict[str, Any]] = []
    killed = False
    assert proc.stdout is not None and proc.stderr is not None
    with proc.stdout, proc.stderr:
        for line in proc.stdout:
            event = json.loads(line)
            events.append(event)
            if kill_when is not None and kill_when(event):
                os.kill(proc.pid, signal.SIGKILL)
                killed = True
                break
        rc = proc.wait(timeout=240)
        err = proc.stderr.read()
    assert killed or rc == 0, f"deploy failed: {err[-3000:]}"
    return killed, events
