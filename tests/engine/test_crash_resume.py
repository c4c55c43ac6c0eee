"""kill -9 at every step boundary (after each start is recorded, after each finish is
recorded); the next run completes with the same end state, no duplicated side effects and
the same secrets as an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from engine_helpers import FileSecrets, Ledger, diamond, make_runner

HERE = Path(__file__).parent
SCRIPT = HERE / "synthetic_dag.py"
BOUNDARIES = 12  # 6 steps x (started, done)


def _run(root: Path, kill_at: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, str(SCRIPT), str(root), str(kill_at)], env=env, capture_output=True, text=True, timeout=60)


def _end_state(root: Path) -> dict:
    runner = make_runner(root, diamond(Ledger(root / "ledger.txt")))
    records = {sid: (r.status, r.fingerprint, r.outputs) for sid, r in runner.state.records().items()}
    return {"records": records, "ledger": sorted(Ledger(root / "ledger.txt").lines())}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("clean")
    assert _run(root, 0).returncode == 0
    return _end_state(root)


@pytest.mark.parametrize("kill_at", range(1, BOUNDARIES + 1))
def test_kill_at_boundary_then_resume(tmp_path: Path, kill_at: int, reference: dict) -> None:
    killed = _run(tmp_path, kill_at)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    secrets_before = json.loads((tmp_path / "secrets.json").read_text()) if (tmp_path / "secrets.json").exists() else {}
    resumed = _run(tmp_path, 0)
    assert resumed.returncode == 0, resumed.stderr
    assert "recovered a stale workspace lock" in resumed.stderr
    end = _end_state(tmp_path)
    assert end == reference
    ledger = Ledger(tmp_path / "ledger.txt").lines()
    assert len(ledger) == len(set(ledger)) == 6
    secrets_after = FileSecrets(tmp_path / "secrets.json")._load()
    assert set(secrets_after) == {"setup/a-token", "cloud/c-token"}
    for name, value in secrets_before.items():
        assert secrets_after[name] == value  # never regenerated
    again = _run(tmp_path, 0)  # and a third run changes nothing
    assert again.returncode == 0 and _end_state(tmp_path) == end
