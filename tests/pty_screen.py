"""Run a command on a pseudo-terminal of a fixed size and read back the final screen, the way a
person would see it: a terminal emulator (pyte) replays every byte, cursor moves and in-place
updates included, so what is counted is screen lines, not raw output."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import termios
import time
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass
class Screen:
    lines: list[str]  # the visible rows, trailing blank rows dropped
    exit_code: int
    raw: bytes
    frame: list[str] | None = None  # the first screen `snapshot` matched while the command ran

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def run_on_pty(argv: Sequence[str], *, cols: int = 100, rows: int = 60, deadline: float = 240.0,
               env: dict[str, str] | None = None, cwd: str | os.PathLike[str] | None = None,
               snapshot: "re.Pattern[str] | None" = None) -> Screen:
    """Run argv with stdin, stdout and stderr on a cols x rows terminal until it exits (or the
    deadline passes: then it is killed and the test fails on the exit code)."""
    import pyte

    pid, fd = pty.fork()
    if pid == 0:  # the child: the terminal is its controlling tty
        try:
            if cwd is not None:
                os.chdir(cwd)
            os.execvpe(argv[0], list(argv), {**os.environ, "TERM": "xterm-256color", "COLUMNS": str(cols), "LINES": str(rows),
                                             **(env or {})})
        finally:
            os._exit(127)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    screen = pyte.Screen(cols, rows)
    stream = pyte.ByteStream(screen)
    raw = bytearray()
    frame: list[str] | None = None
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        ready, _, _ = select.select([fd], [], [], max(0.0, end - time.monotonic()))
        if not ready:
            break
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        raw += chunk
        stream.feed(chunk)
        if snapshot is not None and frame is None and snapshot.search("\n".join(screen.display)):
            frame = _visible(screen)
    done, status = os.waitpid(pid, os.WNOHANG)
    if done == 0:  # still running at the deadline, or it closed the terminal and lives on
        end = time.monotonic() + 10.0
        while done == 0 and time.monotonic() < end:
            select.select([], [], [], 0.05)
            done, status = os.waitpid(pid, os.WNOHANG)
        if done == 0:
            os.kill(pid, 9)
            _, status = os.waitpid(pid, 0)
    os.close(fd)
    return Screen(_visible(screen), os.waitstatus_to_exitcode(status), bytes(raw), frame)


def _visible(screen: "pyte.Screen") -> list[str]:  # noqa: F821 - pyte is imported lazily
    lines = [line.rstrip() for line in screen.display]
    while lines and not lines[-1]:
        lines.pop()
    return lines
