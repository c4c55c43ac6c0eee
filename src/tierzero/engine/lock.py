"""One writer per workspace: a lock file created with O_EXCL holding pid, hostname and start
time. A lock whose pid is dead on this host is stale and recovered; a live one is refused."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType

from tierzero.errors import RefusedError

_HALF_WRITTEN_GRACE = 10.0  # seconds a lock file may stay empty while its creator writes it


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class WorkspaceLock:
    def __init__(self, path: Path, *, notify: Callable[[str], None] | None = None) -> None:
        self.path = path
        self.notify = notify or (lambda message: None)
        self.held = False

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                self._handle_existing()
                continue
            info = {"pid": os.getpid(), "hostname": socket.gethostname(), "started": time.time()}
            try:
                os.write(fd, json.dumps(info).encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            self.held = True
            return
        raise RefusedError(f"could not take the workspace lock {self.path}", hint="another tierzero keeps taking it; retry")

    def _handle_existing(self) -> None:
        try:
            text = self.path.read_text()
            info = json.loads(text)
            pid, host, since = int(info["pid"]), str(info["hostname"]), float(info["started"])
        except FileNotFoundError:
            return  # released meanwhile: try again
        except (ValueError, KeyError, TypeError):
            age = time.time() - self.path.stat().st_mtime
            if age < _HALF_WRITTEN_GRACE:
                time.sleep(0.2)
                return
            self.notify(f"removed an unreadable workspace lock {self.path}")
            self.path.unlink(missing_ok=True)
            return
        when = datetime.fromtimestamp(since, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        if host == socket.gethostname() and not _pid_alive(pid):
            self.notify(f"recovered a stale workspace lock: pid {pid} on {host} (since {when}) is gone")
            self.path.unlink(missing_ok=True)
            return
        raise RefusedError(
            f"the workspace is locked by pid {pid} on {host} since {when}",
            hint="wait for that tierzero to finish; if it is gone from another host, delete " + str(self.path),
        )

    def release(self) -> None:
        if not self.held:
            return
        try:
            info = json.loads(self.path.read_text())
            if int(info.get("pid", -1)) == os.getpid():
                self.path.unlink()
        except (FileNotFoundError, ValueError):
            pass
        self.held = False

    def __enter__(self) -> "WorkspaceLock":
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()
