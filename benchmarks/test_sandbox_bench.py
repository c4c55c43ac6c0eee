"""The sandbox as a user runs it, through the CLI in a new process each time:
- a full deploy of the starter spec into an empty world (target: under 60 s);
- a no-op re-run against the world the first one built (target: under 3 s): every step is
  skipped except the end-to-end checks, which look at the world as it is now.

Run with `pytest benchmarks/test_sandbox_bench.py --benchmark-enable`; with benchmarks
disabled (the suite's default) each still runs once and checks what it measures."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow


def _tz(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tierzero", *args], capture_output=True, text=True, timeout=240)


def _deploy(spec: Path) -> list[dict[str, Any]]:
    proc = _tz("deploy", "-f", str(spec), "--target", "sandbox", "--json")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An initialised starter project (keys made once; each round copies it)."""
    root = tmp_path_factory.mktemp("starter") / "demo"
    assert _tz("init", str(root)).returncode == 0
    return root


def test_full_sandbox_deploy(benchmark: Any, template: Path, tmp_path: Path) -> None:
    rounds: list[Path] = []

    def fresh_copy() -> tuple[tuple[Path], dict]:
        target = tmp_path / f"round{len(rounds)}"
        shutil.copytree(template, target)
        rounds.append(target)
        return (target / "tierzero.yaml",), {}

    events = benchmark.pedantic(_deploy, setup=fresh_copy, rounds=3, iterations=1)
    done = [e for e in events if e["event"] == "step_done"]
    assert events[-1]["event"] == "summary" and len(done) == len({e["step"] for e in done}) > 20


def test_noop_rerun(benchmark: Any, template: Path, tmp_path: Path) -> None:
    project = tmp_path / "demo"
    shutil.copytree(template, project)
    spec = project / "tierzero.yaml"
    _deploy(spec)
    events = benchmark.pedantic(_deploy, args=(spec,), rounds=5, iterations=1, warmup_rounds=1)
    ran = [e["step"] for e in events if e["event"] == "step_started"]
    skipped = [e for e in events if e["event"] == "step_skipped"]
    assert ran == ["validate/checks"] and len(skipped) > 20
