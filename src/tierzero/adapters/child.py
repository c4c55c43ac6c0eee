"""Child processes that cannot outlive tierzero.

`tofu`/`terraform` and `sops` run as children. A run killed with `kill -9` gets no chance to stop
them, and the workspace lock (an flock) is released by the kernel at once, so a child left
running would go on changing the state while the next run starts. Two things prevent it:

- PR_SET_PDEATHSIG (Linux, prctl(2)): the kernel sends the child a signal when the thread that
  started it dies, however it dies. util-linux `setpriv --pdeathsig SIG -- CMD` sets it and execs
  the command (util-linux >= 2.33; Debian, Ubuntu and Proxmox VE ship it). It is not set with a
  Python `preexec_fn`: that forces fork() instead of vfork(), which runs gRPC's fork handlers in
  a process with gRPC threads ("Other threads are currently calling into gRPC, skipping fork()
  handlers") and breaks the child. Where setpriv is missing, only the process group is set.
- A process group of its own: a terminal's Ctrl-C reaches tierzero only, which forwards exactly
  one SIGINT. OpenTofu and Terraform treat a second SIGINT as "exit now, data may be lost".

Which signal: OpenTofu/Terraform get SIGINT, their graceful stop (they cancel what runs, finish
and record the calls in flight, write the state and release its lock, then exit), so a resumed
run finds every instance that was created and never creates it twice. Short-lived tools get
SIGKILL. The children are started from the thread that waits for them, so the thread the
signal follows lives exactly as long as they are needed.

A graceful stop must be able to print: a Go program writing to a pipe whose reader died is
killed by SIGPIPE on the spot (Go runtime, os/signal docs, "SIGPIPE"), before it writes its
state. So a long-running tool writes its output to a file (`output_file`) that tierzero reads
as it grows (`follow`), and that stays writable after tierzero is gone.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, BinaryIO, Iterator


@lru_cache(maxsize=1)
def _setpriv() -> str | None:
    return shutil.which("setpriv") if sys.platform.startswith("linux") else None


def tied_to_this_process(argv: Sequence[str], on_parent_death: int = signal.SIGKILL) -> tuple[list[str], dict[str, Any]]:
    """(argv, Popen keyword arguments) that start `argv` so it gets `on_parent_death` when this
    process dies, in a process group of its own."""
    setpriv = _setpriv()
    wrapped = list(argv)
    if setpriv is not None:
        # setpriv sets the signal, then a shell checks this process is still its parent (had it
        # died before the signal was set, nothing would ever send it) and execs the command.
        wrapped = [setpriv, "--pdeathsig", signal.Signals(on_parent_death).name.removeprefix("SIG"), "--",
                   "/bin/sh", "-c", _EXEC_IF_PARENT_ALIVE, str(os.getpid()), *argv]
    return wrapped, {"process_group": 0}


_EXEC_IF_PARENT_ALIVE = 'test "$PPID" = "$0" || exit 129; exec "$@"'  # $0: the parent's pid; "$@": the command


@contextmanager
def output_file() -> Iterator[tuple[BinaryIO, BinaryIO]]:
    """(writer, reader) of an unlinked private temp file: hand the writer to the child as its
    stdout, read its lines from the reader with `follow`."""
    fd, path = tempfile.mkstemp(prefix="tierzero-out-")
    try:
        writer = os.fdopen(fd, "wb")
        reader = open(path, "rb")  # noqa: SIM115 - closed by the with below
    finally:
        os.unlink(path)
    with writer, reader:
        yield writer, reader


def follow(proc: subprocess.Popen[Any], reader: BinaryIO, poll_seconds: float = 0.05) -> Iterator[str]:
    """The lines the child writes to its output file, as it writes them, until it exits. Waits on
    the process between reads, so its exit ends the loop at once."""
    pending = b""
    while True:
        chunk = reader.read(65536)
        if chunk:
            pending += chunk
            *complete, pending = pending.split(b"\n")
            for raw in complete:
                yield raw.decode(errors="replace") + "\n"
            continue
        if proc.poll() is not None:
            rest = pending + reader.read()
            for raw in rest.split(b"\n")[:-1]:
                yield raw.decode(errors="replace") + "\n"
            if rest and not rest.endswith(b"\n"):
                yield rest.rsplit(b"\n", 1)[-1].decode(errors="replace")
            return
        try:
            proc.wait(timeout=poll_seconds)
        except subprocess.TimeoutExpired:
            pass
