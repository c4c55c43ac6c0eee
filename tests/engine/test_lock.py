from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tierzero.engine.lock import WorkspaceLock
from tierzero.errors import RefusedError


def test_lock_contention_names_holder(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    with WorkspaceLock(path):
        info = json.loads(path.read_text())
        assert info["pid"] == os.getpid() and info["hostname"] == socket.gethostname()
        with pytest.raises(RefusedError) as err:
            WorkspaceLock(path).acquire()
        assert f"pid {os.getpid()}" in err.value.message and socket.gethostname() in err.value.message
        assert "since" in err.value.message
    assert not path.exists()


def test_stale_lock_is_recovered(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(proc.stdout)
    path = tmp_path / "lock"
    path.write_text(json.dumps({"pid": dead_pid, "hostname": socket.gethostname(), "started": time.time() - 60}))
    messages: list[str] = []
    with WorkspaceLock(path, notify=messages.append):
        assert json.loads(path.read_text())["pid"] == os.getpid()
    assert messages and "stale" in messages[0] and str(dead_pid) in messages[0]


def test_lock_of_other_host_is_respected(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    path.write_text(json.dumps({"pid": 1, "hostname": "elsewhere.example", "started": time.time()}))
    with pytest.raises(RefusedError, match="elsewhere.example"):
        WorkspaceLock(path).acquire()


def test_unreadable_unheld_lock_is_taken_over(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    path.write_text("")
    with WorkspaceLock(path):
        assert json.loads(path.read_text())["pid"] == os.getpid()


def test_lock_of_a_killed_unreaped_process_is_recovered(tmp_path: Path) -> None:
    """kill -9 leaves a zombie until its parent waits: its pid still answers signal 0, yet
    the lock it held is free."""
    path = tmp_path / "lock"
    code = ("import sys, time; from pathlib import Path; from tierzero.engine.lock import WorkspaceLock; "
            f"WorkspaceLock(Path({str(path)!r})).acquire(); print('held', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        with pytest.raises(RefusedError, match=f"pid {proc.pid}"):
            WorkspaceLock(path).acquire()
        os.kill(proc.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while Path(f"/proc/{proc.pid}/status").read_text().find("State:\tZ") < 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(proc.pid, 0)  # the zombie is still there: a pid check would call the lock live
        messages: list[str] = []
        with WorkspaceLock(path, notify=messages.append):
            assert json.loads(path.read_text())["pid"] == os.getpid()
        assert messages and str(proc.pid) in messages[0]
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout:
            proc.stdout.close()
