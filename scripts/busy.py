#!/usr/bin/env python3
"""Run a command while CPU-bound processes keep the cores busy: the load the test suite must pass under.

    python scripts/busy.py [--hogs 2] [--repeat 5] -- python -m pytest -n 2 --benchmark-disable

Starts `--hogs` processes that spin on pure-Python arithmetic at normal priority (never nice'd:
the point is to compete with the command), runs the command `--repeat` times in a row, and stops
at the first failure. Prints one line per run with its exit code and wall time, and exits with the
first non-zero code (0 when every run passed). The hogs die with this script however it ends: they
ask the kernel for SIGKILL when their parent dies (PR_SET_PDEATHSIG), and are killed on exit."""

from __future__ import annotations

import argparse
import ctypes
import multiprocessing
import os
import signal
import subprocess
import sys
import time

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _die_with_parent() -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _spin() -> None:
    _die_with_parent()
    x = 0
    while True:
        for i in range(1_000_000):
            x = (x * 31 + i) % 1_000_003


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hogs", type=int, default=2, help="CPU-bound processes to start (default 2)")
    parser.add_argument("--repeat", type=int, default=1, help="run the command this many times in a row (default 1)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")
    def _stop(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)  # subprocess.call kills the command on the way out

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)  # background jobs of a non-interactive shell start with SIGINT ignored
    hogs = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(args.hogs)]
    for hog in hogs:
        hog.start()
    print(f"busy: {len(hogs)} CPU-bound processes ({', '.join(str(h.pid) for h in hogs)}) on {os.cpu_count()} cores", flush=True)
    code = 0
    try:
        for run in range(1, args.repeat + 1):
            started = time.monotonic()
            code = subprocess.call(command)
            print(f"busy: run {run}/{args.repeat}: exit {code} in {time.monotonic() - started:.1f} s", flush=True)
            if code != 0:
                break
    finally:
        for hog in hogs:
            hog.kill()
        for hog in hogs:
            hog.join()
    return code


if __name__ == "__main__":
    sys.exit(main())
