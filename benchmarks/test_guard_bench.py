"""Benchmark: the plan guard on a generated 10,000-resource plan (run: pytest benchmarks --benchmark-enable)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from tierzero.freetier.guard import guard_plan

DAY = dt.date(2026, 7, 1)
RESOURCES = 10_000


def _instance(i: int) -> dict[str, Any]:
    return {"shape": "VM.Standard.A1.Flex", "display_name": f"h{i}",
            "shape_config": [{"ocpus": "1", "memory_in_gbs": "6"}],
            "source_details": [{"source_type": "image", "boot_volume_size_in_gbs": "50"}]}


KINDS = (
    ("oci_core_instance", _instance),
    ("oci_core_volume", lambda i: {"size_in_gbs": 50, "display_name": f"v{i}"}),
    ("oci_core_subnet", lambda i: {"cidr_block": f"10.{i % 250}.0.0/24"}),
    ("oci_core_security_list", lambda i: {"ingress_security_rules": [{"protocol": "6", "source": "0.0.0.0/0"}]}),
    ("oci_core_public_ip", lambda i: {"lifetime": "EPHEMERAL" if i % 7 else "RESERVED"}),
    ("oci_load_balancer_load_balancer", lambda i: {"shape": "flexible", "shape_details": [
        {"minimum_bandwidth_in_mbps": 10, "maximum_bandwidth_in_mbps": 10}]}),
)
ACTIONS = (["no-op"], ["update"], ["create"], ["delete"], ["delete", "create"], ["create", "delete"], ["read"])


def big_plan(count: int = RESOURCES) -> dict[str, Any]:
    """Half the resources exist in prior state (in nested modules); every resource has a change, all actions mixed."""
    changes, prior = [], []
    for i in range(count):
        rtype, values = KINDS[i % len(KINDS)]
        module = f'module.site["s{i % 20}"]'
        address = f"{module}.{rtype}.r[{i}]"
        actions = ACTIONS[i % len(ACTIONS)]
        existing = actions != ["create"]
        v = values(i)
        if existing:
            prior.append({"address": address, "mode": "managed", "type": rtype, "name": "r", "index": i, "values": v})
        mode = "data" if actions == ["read"] else "managed"
        changes.append({"address": address, "module_address": module, "mode": mode, "type": rtype, "name": "r", "index": i,
                        "change": {"actions": actions, "before": v if existing else None,
                                   "after": None if actions == ["delete"] else v}})
    return {"format_version": "1.2", "resource_changes": changes,
            "prior_state": {"values": {"root_module": {"resources": [],
                                                       "child_modules": [{"address": "module.site", "resources": prior}]}}}}


PLAN = big_plan()


def test_guard_10k_resources(benchmark):
    allow = {c["address"] for c in PLAN["resource_changes"] if c["type"] == "oci_core_instance"}
    report = benchmark(guard_plan, PLAN, on=DAY, allow_replace=allow)
    assert report.verdict == "refused"  # thousands of A1 hosts and volumes: far beyond the free tier
    assert report.totals.resources_held > 5000


def test_guard_summary_against_json(tmp_path, request):
    """`tierzero guard` on the 10,000-resource plan, as a person sees it (the summary) and with
    --json, interleaved processes (goal: summary <= 1.5 x json)."""
    import json

    from ratios import interleaved, report, rounds, tz

    path = tmp_path / "plan.json"
    path.write_text(json.dumps(PLAN))
    outputs: dict[str, str] = {}

    def run(*extra: str) -> None:
        outputs[extra[0] if extra else "summary"] = tz("guard", str(path), "--limits-date", DAY.isoformat(), *extra, ok=(1,)).stdout

    times = interleaved({"guard (summary)": run, "guard --json": lambda: run("--json")}, rounds(request.config, 5))
    report("guard of a 10,000-resource plan", times, {"summary / json": ("guard (summary)", "guard --json", 1.5)})
    summary, full = outputs["summary"], json.loads(outputs["--json"])
    assert f"{len(full['resources']) - sum(1 for line in summary.splitlines() if line.startswith('  module.'))} more free resources: --verbose" in summary
    assert all(f"✗ {reason}" in summary for reason in full["reasons"])
