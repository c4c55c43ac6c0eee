"""The guard stays well under a second on a 10,000-resource plan (the full benchmark lives in benchmarks/)."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "test_guard_bench.py"


def _bench_module():
    spec = importlib.util.spec_from_file_location("tierzero_guard_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_10k_resource_plan_under_a_second():
    bench = _bench_module()
    assert len(bench.PLAN["resource_changes"]) == 10_000
    start = time.perf_counter()
    report = bench.guard_plan(bench.PLAN, on=bench.DAY)
    assert time.perf_counter() - start < 1.0
    assert report.verdict == "refused"
