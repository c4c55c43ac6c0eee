"""Ratios measured with the compared runs interleaved (A, B, A, B, ...), so load on a shared
machine falls on both alike; each run is a new process unless said otherwise. With
`--benchmark-enable` each comparison takes several rounds and prints medians; in the suite's
smoke run (`--benchmark-disable`) one round, printed all the same: a ratio of one round on a
busy machine says little, the smoke run checks that the benchmark still works.

Every process runs with Python's bytecode cache on (`as_installed`), as an installed tierzero
and its dependencies run for a user: an environment with PYTHONDONTWRITEBYTECODE (this
workplace's shells set it) would otherwise compile tierzero's own modules from source in every
run while the compared tools load their compiled ones from site-packages."""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest


def rounds(config: pytest.Config, enabled: int) -> int:
    """`enabled` rounds when benchmarks are enabled, else 1 (the smoke run)."""
    return enabled if config.getoption("benchmark_enable", False) else 1


# CPU seconds (user + system) of the child processes each run waited for, by run name: on a
# loaded machine they vary far less than the wall clock, so `report` prints their ratios beside.
CPU: dict[str, list[float]] = {}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(run: Callable[[], Any], name: str | None = None) -> float:
    cpu, started = _children_cpu(), time.perf_counter()
    run()
    wall = time.perf_counter() - started
    if name is not None:
        CPU.setdefault(name, []).append(_children_cpu() - cpu)
    return wall


def interleaved(runs: Mapping[str, Callable[[], Any]], count: int) -> dict[str, list[float]]:
    """Seconds of each run, `count` rounds, the runs one after the other within each round."""
    out: dict[str, list[float]] = {name: [] for name in runs}
    for name in runs:
        CPU[name] = []
    for _ in range(count):
        for name, run in runs.items():
            out[name].append(timed(run, name))
    return out


def as_installed() -> dict[str, str]:
    """The environment of a measured process: this one's, with the bytecode cache allowed."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def tz(*args: str, ok: Sequence[int] = (0,), timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """`tierzero ARGS` in a new process."""
    proc = subprocess.run([sys.executable, "-m", "tierzero", *args], capture_output=True, text=True, timeout=timeout, env=as_installed())
    assert proc.returncode in ok, f"tierzero {' '.join(args)} exited {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return proc


def report(title: str, times: Mapping[str, list[float]], ratios: Mapping[str, tuple[str, str, float]]) -> dict[str, float]:
    """Print each run's median and each ratio (numerator / denominator, against its goal)."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    medians = {name: statistics.median(values) for name, values in times.items()}
    rounds_ = len(next(iter(times.values())))
    lines = [f"\n{title} ({rounds_} round{'s' * (rounds_ != 1)}, interleaved; load average {load:.1f} on {os.cpu_count()} cores)"]
    cpu = {name: statistics.median(CPU[name]) for name in times if CPU.get(name)}
    lines += [f"  {name}: median {m:.3f} s (min {min(times[name]):.3f}, max {max(times[name]):.3f})"
              + (f"; CPU of its processes median {cpu[name]:.3f} s" if name in cpu else "") for name, m in medians.items()]
    out = {}
    for label, (num, den, goal) in ratios.items():
        value = medians[num] / medians[den]
        out[label] = value
        by_cpu = f"; by CPU seconds {cpu[num] / cpu[den]:.2f}" if num in cpu and den in cpu and cpu[den] > 0 else ""
        lines.append(f"  {label}: {value:.2f} (goal <= {goal:g}) {'ok' if value <= goal else 'OVER GOAL'}{by_cpu}")
    print("\n".join(lines))
    return out
