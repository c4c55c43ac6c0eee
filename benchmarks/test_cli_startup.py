"""`tierzero --help` must start fast (target: under 300 ms): imports stay lazy."""

from __future__ import annotations

import subprocess
import sys


def _help() -> None:
    subprocess.run([sys.executable, "-m", "tierzero", "--help"], check=True, capture_output=True)


def test_help_startup(benchmark):
    benchmark.pedantic(_help, rounds=10, iterations=1, warmup_rounds=1)
