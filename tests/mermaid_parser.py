"""The real Mermaid parser for tests: tests/tooling/mermaid/parse.mjs runs mermaid.parse (the pinned
npm package, under Node.js with jsdom) on each text and reports what mermaid's own diagram
database then holds: a flowchart's nodes, subgraphs and edges, a Gantt chart's tasks with the
start and end mermaid computed. `.ci/run` installs the packages (`npm ci`); a developer's first
run installs them here the same way (once, under a lock shared by the xdist workers)."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

TOOL = Path(__file__).parent / "tooling" / "mermaid"


def _ensure_installed() -> None:
    if (TOOL / "node_modules" / "mermaid" / "package.json").is_file():
        return
    npm = shutil.which("npm")
    if shutil.which("node") is None or npm is None:
        message = "Node.js and npm are needed to run the real Mermaid parser (.ci/run installs them)"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)
    with open(TOOL / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (TOOL / "node_modules" / "mermaid" / "package.json").is_file():
            proc = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=TOOL, capture_output=True, text=True, timeout=280)
            assert proc.returncode == 0, proc.stderr[-2000:]


def mermaid_parse(texts: list[str]) -> list[dict[str, Any]]:
    """One result per text: {"ok": False, "error"} or {"ok": True, "type", ...what mermaid's db holds}."""
    _ensure_installed()
    proc = subprocess.run(["node", str(TOOL / "parse.mjs")], input=json.dumps(texts), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(proc.stdout)
    assert len(results) == len(texts)
    return results
