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

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tierzero.freetier.capacity import CapacityReport, capacity_report
    from tierzero.freetier.cost import Assessment, Backup, Finding, Instance, LoadBalancer, Usage, Volume, assess
    from tierzero.freetier.guard import GuardReport, GuardRow, guard_plan, require_free
    from tierzero.freetier.limits import Limits, Prices, limits_on, prices_on
    from tierzero.freetier.spec_check import FitReport, check_spec, check_usage, usage_from_spec

# Loaded on first use (PEP 562): importing one module of the package (`render` needs only
# `limits`) must not load the guard, the cost model and the spec check with it.
_EXPORTS = {
    "capacity": ("CapacityReport", "capacity_report"),
    "cost": ("Assessment", "Backup", "Finding", "Instance", "LoadBalancer", "Usage", "Volume", "assess"),
    "guard": ("GuardReport", "GuardRow", "guard_plan", "require_free"),
    "limits": ("Limits", "Prices", "limits_on", "prices_on"),
    "spec_check": ("FitReport", "check_spec", "check_usage", "usage_from_spec"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = [
    "Assessment", "Backup", "CapacityReport", "Finding", "FitReport", "GuardReport", "GuardRow", "Instance", "Limits", "LoadBalancer",
    "Prices", "Usage", "Volume", "assess", "capacity_report", "check_spec", "check_usage", "guard_plan", "limits_on", "prices_on",
    "require_free", "usage_from_spec",
]


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{module}"), name)
