"""kill -9 during the host preparation of the starter (the Proxmox VE packages unpacking, then a
host down in its reboot), resumed each time by a plain `deploy`: the run ends deployed and
validated, the killed step finishes on the resume, and no step that had finished runs again."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sandbox_runs import starter_project

TESTS = Path(__file__).resolve().parent
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def _deploy(spec: Path, kill_during: str | None = None) -> tuple[int, list[dict[str, Any]]]:
    prefix = [sys.executable, str(TESTS / "cli_killed_during.py"), kill_during, "--"] if kill_during else [sys.executable, "-m", "tierzero"]
    proc = subprocess.run([*prefix, "deploy", "-f", str(spec), "--target", "sandbox", "--json"],
                          capture_output=True, text=True, timeout=300)
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return proc.returncode, events


def _steps(events: list[dict[str, Any]], kind: str) -> set[str]:
    return {e["step"] for e in events if e["event"] == kind}


def test_killed_during_the_install_and_the_reboot_it_resumes(tmp_path: Path) -> None:
    spec = starter_project(tmp_path)
    rc, first = _deploy(spec, kill_during="apt-install")
    assert rc == -signal.SIGKILL, first[-3:]
    started = _steps(first, "step_started")
    assert {"hypervisors/prepare/pve1", "hypervisors/prepare/pve2"} <= started  # killed while preparing them
    assert not _steps(first, "step_done") & {"hypervisors/prepare/pve1", "hypervisors/prepare/pve2"}

    rc, second = _deploy(spec, kill_during="reboot")
    assert rc == -signal.SIGKILL, second[-3:]
    assert not _steps(second, "step_done") & _steps(first, "step_done")  # what finished is not run again

    rc, third = _deploy(spec)
    assert rc == 0, third[-3:]
    done = _steps(third, "step_done")
    assert "validate/checks" in done and not done & (_steps(first, "step_done") | _steps(second, "step_done"))
    prepared = _steps(first, "step_done") | _steps(second, "step_done") | done
    assert {"hypervisors/prepare/pve1", "hypervisors/prepare/pve2"} <= prepared
