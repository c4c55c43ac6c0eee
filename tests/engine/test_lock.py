from __future__ import annotations

import json
import os
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


def test_unreadable_old_lock_is_removed(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    path.write_text("")
    old = time.time() - 60
    os.utime(path, (old, old))
    with WorkspaceLock(path):
        pass
