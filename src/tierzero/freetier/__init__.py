"""Free-tier guard: OCI Always Free limits and prices as dated data, a cost model, the spec fit check,
the per-host capacity report, and the OpenTofu plan guard.

Public API:
    limits_on(day) -> Limits, prices_on(day) -> Prices
    assess(usage, on=day) -> Assessment
    check_spec(platform, on=day) -> FitReport, usage_from_spec(platform) -> Usage, check_usage(usage, on) -> FitReport
    capacity_report(platform) -> CapacityReport
    guard_plan(plan_json, on=day, allow_replace=set()) -> GuardReport; require_free(...) raises RefusedError
"""

from __future__ import annotations

from tierzero.freetier.capacity import CapacityReport, capacity_report
from tierzero.freetier.cost import Assessment, Backup, Finding, Instance, LoadBalancer, Usage, Volume, assess
from tierzero.freetier.guard import GuardReport, GuardRow, guard_plan, require_free
from tierzero.freetier.limits import Limits, Prices, limits_on, prices_on
from tierzero.freetier.spec_check import FitReport, check_spec, check_usage, usage_from_spec

__all__ = [
    "Assessment",
    "Backup",
    "CapacityReport",
    "Finding",
    "FitReport",
    "GuardReport",
    "GuardRow",
    "Instance",
    "Limits",
    "LoadBalancer",
    "Prices",
    "Usage",
    "Volume",
    "assess",
    "capacity_report",
    "check_spec",
    "check_usage",
    "guard_plan",
    "limits_on",
    "prices_on",
    "require_free",
    "usage_from_spec",
]
