"""Plan guard: would applying this OpenTofu plan cost money, or replace an A1 instance?

`guard_plan(plan_json, on=..., allow_replace=...)` reads `tofu show -json plan.out`, works out what the tenancy
holds after apply (see plan_reader), prices it with the cost model, and returns a per-resource report with a verdict.
A1 capacity is scarce in most regions, so deleting or replacing an A1 instance is refused unless the caller names
its address in `allow_replace`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tierzero.freetier.cost import (
    A1_SHAPE,
    MICRO_SHAPE,
    Assessment,
    Backup,
    Finding,
    Instance,
    LoadBalancer,
    Usage,
    Volume,
    assess,
    fixed_shape_mbps,
)
from tierzero.freetier.leftovers import LAUNCH_VOLUME_SIZE_PATHS, boot_volume_gb, launch_volumes_gb, leftovers
from tierzero.freetier.limits import Limits, limits_on
from tierzero.freetier.plan_reader import Held, first_block, read_holdings
from tierzero.freetier.plan_values import amount, unknown_paths

DEFAULT_BOOT_VOLUME_GB = 50.0  # what tierzero assumes when a plan leaves boot_volume_size_in_gbs out or unknown
DEFAULT_VOLUME_GB = 1024.0  # OCI's default block volume size when size_in_gbs is not given
ASSUMED_BACKUP_GB = 50.0  # a planned backup's size is unknown until it exists; the smallest volume is assumed
# Flex shapes launched without shape_config get one OCPU and the console's default memory per OCPU.
DEFAULT_FLEX_OCPUS = 1.0
DEFAULT_GB_PER_OCPU = {A1_SHAPE: 6.0}
DEFAULT_GB_PER_OCPU_OTHER = 16.0

INSTANCE = "oci_core_instance"
VOLUME_TYPES = ("oci_core_volume", "oci_core_boot_volume")
BACKUP_TYPES = ("oci_core_volume_backup", "oci_core_boot_volume_backup")
LOAD_BALANCER_TYPES = ("oci_load_balancer_load_balancer", "oci_load_balancer")
NETWORK_LOAD_BALANCER = "oci_network_load_balancer_network_load_balancer"
PUBLIC_IP = "oci_core_public_ip"
VCN = "oci_core_vcn"
BUCKET = "oci_objectstorage_bucket"
BUDGET = "oci_budget_budget"
SHOWN_FREE_TYPES = (NETWORK_LOAD_BALANCER, VCN, BUCKET, BUDGET)
REMOVING_ACTIONS = ("delete", "replace", "replace (create first)")

# Attributes that set what a resource costs (or leaves behind); one unknown at plan time refuses the plan.
# A backup's size is left out: OCI computes it during apply for every backup, and the free count, not the
# size, decides whether one is charged (the size is then assumed, ASSUMED_BACKUP_GB).
PRICE_PATHS: dict[str, tuple[str, ...]] = {
    INSTANCE: (
        "shape", "shape_config.ocpus", "shape_config.memory_in_gbs", "source_details.boot_volume_size_in_gbs",
        "source_details.is_preserve_boot_volume_enabled", "preserve_boot_volume", "preserve_data_volumes_created_at_launch",
        *LAUNCH_VOLUME_SIZE_PATHS,
    ),
    "oci_core_volume": ("size_in_gbs", "size_in_mbs"),
    "oci_core_boot_volume": ("size_in_gbs",),
    "oci_load_balancer_load_balancer": ("shape", "shape_details.minimum_bandwidth_in_mbps", "shape_details.maximum_bandwidth_in_mbps"),
    "oci_load_balancer": ("shape", "shape_details.minimum_bandwidth_in_mbps", "shape_details.maximum_bandwidth_in_mbps"),
    PUBLIC_IP: ("lifetime",),
    "oci_kms_vault": ("vault_type",),
    "oci_kms_key": ("protection_mode",),
}


@dataclass
class GuardRow:
    address: str
    type: str
    action: str
    shape: str = ""
    ocpus: float = 0.0
    memory_gb: float = 0.0
    storage_gb: float = 0.0
    usd_month: float | None = 0.0  # None: charged, no list price known
    held: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "type": self.type,
            "action": self.action,
            "shape": self.shape,
            "ocpus": self.ocpus,
            "memory_gb": self.memory_gb,
            "storage_gb": self.storage_gb,
            "usd_month": None if self.usd_month is None else round(self.usd_month, 4),
            "held_after_apply": self.held,
        }


@dataclass
class GuardTotals:
    a1_ocpus: float = 0.0
    a1_memory_gb: float = 0.0
    micro_instances: int = 0
    storage_gb: float = 0.0
    usd_month: float = 0.0
    unpriced: int = 0
    resources_held: int = 0


@dataclass
class GuardReport:
    limits_date: dt.date
    rows: list[GuardRow]
    totals: GuardTotals
    findings: list[Finding]
    replace_refusals: list[str]
    notes: list[str] = field(default_factory=list)
    unknowns: list[str] = field(default_factory=list)  # "unknown at plan time: ADDRESS: attribute, …"

    @property
    def charged(self) -> bool:
        return any(f.kind == "charge" for f in self.findings)

    @property
    def refused(self) -> bool:
        return bool(self.unknowns) or bool(self.replace_refusals) or any(f.kind != "warning" for f in self.findings)

    @property
    def verdict(self) -> str:
        return "refused" if self.refused else "free"

    @property
    def reasons(self) -> list[str]:
        return self.unknowns + self.replace_refusals + [f.line() for f in self.findings if f.kind != "warning"]

    def as_dict(self) -> dict[str, Any]:
        t = self.totals
        return {
            "verdict": self.verdict,
            "charged": self.charged,
            "limits_date": self.limits_date.isoformat(),
            "usd_month": round(t.usd_month, 4),
            "unpriced_resources": t.unpriced,
            "totals": {
                "a1_ocpus": t.a1_ocpus,
                "a1_memory_gb": t.a1_memory_gb,
                "micro_instances": t.micro_instances,
                "storage_gb": t.storage_gb,
                "resources_held": t.resources_held,
            },
            "reasons": self.reasons,
            "unknown_at_plan_time": self.unknowns,
            "warnings": [f.line() for f in self.findings if f.kind == "warning"],
            "findings": [f.as_dict() for f in self.findings],
            "notes": self.notes,
            "resources": [r.as_dict() for r in self.rows],
        }


def _instance(held: Held, values: dict[str, Any], limits: Limits) -> Instance:
    shape = str(values.get("shape") or "(unknown shape)")
    memory: float | None
    if shape == MICRO_SHAPE:
        ocpus, memory = limits["micro_ocpus"], limits["micro_memory_gb"]
    else:
        config = first_block(values, "shape_config")
        ocpus = amount(config.get("ocpus"), held.address, "shape_config.ocpus", DEFAULT_FLEX_OCPUS) or DEFAULT_FLEX_OCPUS
        default_memory = ocpus * DEFAULT_GB_PER_OCPU.get(shape, DEFAULT_GB_PER_OCPU_OTHER)
        memory = amount(config.get("memory_in_gbs"), held.address, "shape_config.memory_in_gbs", default_memory)
    return Instance(held.address, shape, ocpus, memory or 0.0, boot_volume_gb(held.address, values) or DEFAULT_BOOT_VOLUME_GB)


def _volume_gb(held: Held, default: float) -> float:
    size = amount(held.values.get("size_in_gbs"), held.address, "size_in_gbs")
    mbs = amount(held.values.get("size_in_mbs"), held.address, "size_in_mbs")
    if size is None and mbs is not None:
        size = mbs / 1024
    return default if size is None else size


def _load_balancer(held: Held, values: dict[str, Any]) -> LoadBalancer:
    shape = str(values.get("shape") or "flexible")
    if shape == "flexible":
        details = first_block(values, "shape_details")
        low = amount(details.get("minimum_bandwidth_in_mbps"), held.address, "shape_details.minimum_bandwidth_in_mbps", 10.0) or 0.0
        high = amount(details.get("maximum_bandwidth_in_mbps"), held.address, "shape_details.maximum_bandwidth_in_mbps", low) or 0.0
        return LoadBalancer(held.address, shape, low, max(low, high))
    fixed = fixed_shape_mbps(shape) or 10.0
    return LoadBalancer(held.address, shape, fixed, fixed)


def _add(held: Held, usage: Usage, rows: list[GuardRow], limits: Limits) -> None:
    """Count one object into `usage` (when held) and give it a row (when its type matters to the free tier)."""
    values, row = held.values, None
    if held.type == INSTANCE:
        inst = _instance(held, values, limits)
        if held.held:
            usage.instances.append(inst)
        row = GuardRow(held.address, held.type, held.action, inst.shape, inst.ocpus, inst.memory_gb, inst.boot_volume_gb)
        for i, size in enumerate(launch_volumes_gb(held.address, values)):
            # launch_volume_attachments create block volumes that count like any other
            vol = Volume(f"{held.address} (launch volume {i})", size)
            if held.held:
                usage.volumes.append(vol)
            rows.append(GuardRow(vol.id, "oci_core_volume", held.action, storage_gb=size, held=held.held))
    elif held.type in VOLUME_TYPES:
        default = DEFAULT_BOOT_VOLUME_GB if held.type == "oci_core_boot_volume" else DEFAULT_VOLUME_GB
        vol = Volume(held.address, _volume_gb(held, default))
        if held.held:
            usage.volumes.append(vol)
        row = GuardRow(held.address, held.type, held.action, storage_gb=vol.size_gb)
    elif held.type in BACKUP_TYPES:
        size = (amount(values.get("size_in_gbs"), held.address, "size_in_gbs")
                or amount(values.get("unique_size_in_gbs"), held.address, "unique_size_in_gbs") or ASSUMED_BACKUP_GB)
        if held.held:
            usage.backups.append(Backup(held.address, size))
        row = GuardRow(held.address, held.type, held.action, "backup", storage_gb=size)
    elif held.type in LOAD_BALANCER_TYPES:
        lb = _load_balancer(held, values)
        if held.held:
            usage.load_balancers.append(lb)
        row = GuardRow(held.address, held.type, held.action, f"{lb.shape} {lb.min_mbps:g}–{lb.max_mbps:g} Mbps")
    elif held.type == PUBLIC_IP:
        if str(values.get("lifetime", "")).upper() != "RESERVED":
            return
        if held.held:
            usage.reserved_ips.append(held.address)
        row = GuardRow(held.address, held.type, held.action, "reserved IPv4")
    elif held.type == "oci_kms_vault":
        private = str(values.get("vault_type", "DEFAULT")).upper() == "VIRTUAL_PRIVATE"
        if private and held.held:
            usage.private_vaults.append(held.address)
        row = GuardRow(held.address, held.type, held.action, "virtual private vault" if private else "virtual vault")
    elif held.type == "oci_kms_key":
        mode = str(values.get("protection_mode") or "HSM").upper()  # the API's default is HSM
        if mode != "SOFTWARE" and held.held:
            usage.hsm_key_versions.append(held.address)
        row = GuardRow(held.address, held.type, held.action, f"{mode.lower()} key")
    elif held.type in SHOWN_FREE_TYPES:
        if held.type == VCN and held.held:
            usage.vcns.append(held.address)
        if held.type == NETWORK_LOAD_BALANCER and held.held:
            usage.network_load_balancers.append(held.address)
        row = GuardRow(held.address, held.type, held.action, "network load balancer" if held.type == NETWORK_LOAD_BALANCER else "")
    if row is not None:
        row.held = held.held
        rows.append(row)


def _is_a1(values: dict[str, Any] | None) -> bool:
    return values is not None and values.get("shape") == A1_SHAPE


def _replace_refusals(holdings: Iterable[Held], allow_replace: set[str], notes: list[str]) -> list[str]:
    refusals, used = [], set()
    for held in holdings:
        if held.type != INSTANCE or held.action not in REMOVING_ACTIONS or held.deposed:
            continue  # destroying a deposed old copy is the end of a replacement already under way
        if not (_is_a1(held.before) or _is_a1(held.values)):
            continue
        if held.address in allow_replace:
            used.add(held.address)
            notes.append(f"{held.address}: {held.action} of an A1 instance allowed by --allow-replace")
            continue
        refusals.append(
            f"{held.address}: the plan would {held.action} an A1 instance; A1 capacity is often unavailable, "
            f"so it may not come back. Fix: change the plan so the instance stays, or re-run with "
            f"--allow-replace '{held.address}'"
        )
    for address in sorted(allow_replace - used):
        notes.append(f"--allow-replace {address}: no A1 delete or replace at that address in this plan")
    return refusals


def _totals(rows: list[GuardRow], assessment: Assessment) -> GuardTotals:
    totals = GuardTotals(usd_month=assessment.total_usd_month, unpriced=len(assessment.unpriced_ids))
    for row in rows:
        if not row.held:
            continue
        totals.resources_held += 1
        if row.type == INSTANCE and row.shape == A1_SHAPE:
            totals.a1_ocpus += row.ocpus
            totals.a1_memory_gb += row.memory_gb
        if row.type == INSTANCE and row.shape == MICRO_SHAPE:
            totals.micro_instances += 1
        if row.type == INSTANCE or row.type in VOLUME_TYPES:
            totals.storage_gb += row.storage_gb
    return totals


def _unknowns(holdings: Iterable[Held]) -> list[str]:
    lines = []
    for held in holdings:
        if held.held and held.unknown:
            paths = unknown_paths(held.unknown, PRICE_PATHS.get(held.type, ()))
            if paths:
                lines.append(
                    f"unknown at plan time: {held.address}: {', '.join(paths)}; its price cannot be judged before apply. "
                    "Fix: give it a value known at plan time (a literal or a variable), or apply what it depends on first"
                )
    return lines


def guard_plan(plan_json: dict[str, Any], *, on: dt.date | None = None, allow_replace: Iterable[str] = ()) -> GuardReport:
    """Judge a `tofu show -json` plan against the Always Free tier in force on `on` (default today).

    Raises InputError (exit 2) for a price-setting value that is invalid (a word, negative, NaN or infinite),
    naming the resource address and the attribute. Volumes a delete or replace leaves behind (leftovers.py)
    are held after the apply and priced like any other."""
    limits = limits_on(on)
    holdings = read_holdings(plan_json)
    holdings += leftovers(holdings)
    usage, rows = Usage(), list[GuardRow]()
    for held in holdings:
        _add(held, usage, rows, limits)
    assessment = assess(usage, limits=limits, on=limits.on)
    for row in rows:
        if row.held:
            row.usd_month = None if row.address in assessment.unpriced_ids else assessment.usd_by_id.get(row.address, 0.0)
        else:
            row.usd_month = 0.0
    notes: list[str] = []
    if any(r.type == BUCKET and r.held for r in rows):
        notes.append(f"bucket contents are not in a plan: keep object storage under {limits['object_storage_gb']:g} GB yourself")
    refusals = _replace_refusals(holdings, set(allow_replace), notes)
    left = [h for h in holdings if h.action.startswith("left by")]
    if left:
        notes.append(f"{len(left)} volume(s) outlive their instance and leave the state: "
                     f"{sum(r.storage_gb for r in rows if r.action.startswith('left by')):g} GB still billed after the apply")
    return GuardReport(limits.on, rows, _totals(rows, assessment), assessment.findings, refusals, notes, _unknowns(holdings))


def require_free(plan_json: dict[str, Any], *, on: dt.date | None = None, allow_replace: Iterable[str] = ()) -> GuardReport:
    """`guard_plan`, raising RefusedError (exit 1) with every reason when the plan is refused. For the engine's apply."""
    from tierzero.errors import RefusedError

    report = guard_plan(plan_json, on=on, allow_replace=allow_replace)
    if report.refused:
        raise RefusedError(
            "the free-tier guard refused the plan:\n  " + "\n  ".join(report.reasons),
            hint="fix the spec, or pass --allow-replace ADDRESS for an intended A1 replacement",
        )
    return report
