"""The sandbox as a user runs it, through the CLI in a new process each time:
a full deploy of the starter spec into an empty world, then a no-op re-run against the world
it built (every step skipped except the GitOps push, which looks at the remote where a file
may have been deleted, and the end-to-end checks, which look at the world as it is now), rounds
interleaved; it prints the ratio (goal: the re-run <= 0.35 x the first deploy).

Run with `pytest benchmarks/test_sandbox_bench.py --benchmark-enable -s`; with benchmarks
disabled (the suite's default) one round runs and checks what it measures."""

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
    from ratios import as_installed

    return subprocess.run([sys.executable, "-m", "tierzero", *args], capture_output=True, text=True, timeout=240, env=as_installed())


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


def test_noop_rerun_against_first_deploy(template: Path, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """Each round: a first deploy into an empty world, then a no-op re-run against the world it
    built; the ratio of the medians (goal <= 0.35)."""
    from ratios import interleaved, report, rounds

    count = rounds(request.config, 3)
    if count > 1:  # a warm-up deploy in a copy of its own: the measured rounds find the bytecode cache filled
        shutil.copytree(template, tmp_path / "warm-up")
        _deploy(tmp_path / "warm-up" / "tierzero.yaml")
    projects = []
    for i in range(count):
        shutil.copytree(template, tmp_path / f"round{i}")
        projects.append(tmp_path / f"round{i}" / "tierzero.yaml")
    events: list[list[dict[str, Any]]] = []  # first, re-run, first, re-run, ...

    def first() -> None:
        events.append(_deploy(projects[len(events) // 2]))

    def rerun() -> None:
        events.append(_deploy(projects[len(events) // 2]))

    times = interleaved({"first deploy": first, "no-op re-run": rerun}, count)
    report("sandbox deploy of the starter spec", times, {"no-op re-run / first deploy": ("no-op re-run", "first deploy", 0.35)})
    for first_events, rerun_events in zip(events[::2], events[1::2]):
        done = [e for e in first_events if e["event"] == "step_done"]
        assert first_events[-1]["event"] == "summary" and len(done) == len({e["step"] for e in done}) > 20
        ran = [e["step"] for e in rerun_events if e["event"] == "step_started"]
        assert ran == ["gitops/main/push", "validate/checks"] and sum(e["event"] == "step_skipped" for e in rerun_events) > 20
