"""One writer per workspace: an exclusive `flock` on the lock file, held for as long as the
process lives, and the holder's pid, hostname and start time written in it for messages.

The kernel drops the flock when its holder dies however it dies (kill -9, OOM, a zombie not
yet reaped), so a lock nobody holds is stale by definition and is taken over; pid liveness
is never guessed (pids are reused). A lock naming another host is respected: flock does not
reach across hosts on shared storage, and that holder cannot be checked from here."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any

from tierzero.errors import RefusedError


def _read_info(fd: int) -> dict[str, Any] | None:
    os.lseek(fd, 0, os.SEEK_SET)
    raw = os.read(fd, 4096)
    try:
        info = json.loads(raw)
        return {"pid": int(info["pid"]), "hostname": str(info["hostname"]), "started": float(info["started"])}
    except (ValueError, KeyError, TypeError):
        return None


def _describe(info: dict[str, Any] | None) -> str:
    if info is None:
        return "another tierzero"
    when = datetime.fromtimestamp(info["started"], timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"pid {info['pid']} on {info['hostname']} since {when}"


class WorkspaceLock:
    def __init__(self, path: Path, *, notify: Callable[[str], None] | None = None) -> None:
        self.path = path
        self.notify = notify or (lambda message: None)
        self.held = False
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(5):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                info = _read_info(fd)
                os.close(fd)
                raise RefusedError(f"the workspace is locked by {_describe(info)}",
                                   hint="wait for that tierzero to finish; it holds the lock for as long as it runs") from None
            if not self._same_file(fd):  # the holder released (and removed) it between our open and flock
                os.close(fd)
                continue
            previous = _read_info(fd)
            if previous is not None and previous["hostname"] != socket.gethostname():
                os.close(fd)
                raise RefusedError(f"the workspace is locked by {_describe(previous)}",
                                   hint="wait for that tierzero to finish; if it is gone, delete " + str(self.path))
            if previous is not None:
                self.notify(f"recovered a stale workspace lock: {_describe(previous)} is gone")
            info = {"pid": os.getpid(), "hostname": socket.gethostname(), "started": time.time()}
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info).encode(), 0)
            self._fd, self.held = fd, True
            return
        raise RefusedError(f"could not take the workspace lock {self.path}", hint="another tierzero keeps taking it; retry")

    def _same_file(self, fd: int) -> bool:
        try:
            return os.fstat(fd).st_ino == os.stat(self.path).st_ino
        except FileNotFoundError:
            return False

    def release(self) -> None:
        if not self.held or self._fd is None:
            return
        self.path.unlink(missing_ok=True)  # before unlocking: a waiter that opened it re-checks the inode
        os.close(self._fd)
        self._fd, self.held = None, False

    def __enter__(self) -> "WorkspaceLock":
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()
