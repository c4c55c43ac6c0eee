"""The guard handles a 10,000-resource plan (its speed is measured in benchmarks/test_guard_bench.py:
a timed assertion here would fail on a busy machine without saying anything about the code)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "test_guard_bench.py"


def _bench_module():
    spec = importlib.util.spec_from_file_location("tierzero_guard_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_10k_resource_plan_is_refused():
    bench = _bench_module()
    assert len(bench.PLAN["resource_changes"]) == 10_000
    report = bench.guard_plan(bench.PLAN, on=bench.DAY)
    assert report.verdict == "refused"
