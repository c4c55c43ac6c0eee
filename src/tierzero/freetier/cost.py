"""Cost model: what a tenancy holds (`Usage`), judged against the Always Free limits and list prices of a day.

Free allowances are pooled across the tenancy, so charges are attributed at the margin: resources are consumed in
the order given (existing ones first, when the caller knows), and whichever resource pushes a pool over its
allowance carries the excess. The total is the same in any order.
"""

from __future__ import annotations

import datetime as dt
import math
import re

from tierzero.freetier.findings import _EPSILON, Assessment, Finding, Kind, usd  # noqa: F401  (re-exported)
from tierzero.freetier.limits import Limits, Prices, limit_eras, limits_on, prices_on
from tierzero.freetier.vault import assess_vault
from tierzero.freetier.usage import (  # noqa: F401  (re-exported: callers build a Usage from here too)
    A1_SHAPE,
    MICRO_SHAPE,
    Backup,
    Instance,
    LoadBalancer,
    Usage,
    Volume,
)

GB_PER_TB = 1024

class _Pool:
    """A free allowance consumed in order; `take` returns the part of `amount` above what is left."""

    def __init__(self, free: float) -> None:
        self.left = free
        self.excess = 0.0

    def take(self, amount: float) -> float:
        free = min(self.left, amount)
        self.left -= free
        over = amount - free
        if over <= _EPSILON:
            return 0.0
        self.excess += over
        return over


def num(value: float) -> str:
    """A quantity for people: thousands separators, at most two decimals, no trailing zeros."""
    text = f"{value:,.2f}".rstrip("0").rstrip(".")
    return text if text != "-0" else "0"


def _cost(amount: float, price: float | None) -> float | None:
    return None if price is None else amount * price


def _sum_known(values: list[float | None]) -> float | None:
    return None if any(v is None for v in values) else sum(v or 0.0 for v in values)


def a1_fits(limits: Limits, hours: int, at_most: int) -> list[str]:
    """Designs of 1..at_most equal A1 instances that fit the allowance, largest count first."""
    max_ocpus = math.floor(limits["a1_ocpu_hours_month"] / hours + _EPSILON)
    max_gb = math.floor(limits["a1_gb_hours_month"] / hours + _EPSILON)
    fits = []
    # Offer at least two layouts when the allowance has room for two hosts, even for a one-host design.
    for count in range(max(1, min(max(at_most, 2), max_ocpus)), 0, -1):
        ocpus, memory = max_ocpus // count, max_gb // count
        if ocpus >= 1 and limits["a1_memory_gb_per_ocpu_min"] * ocpus <= memory:
            fits.append(f"{count} × A1 at {ocpus} OCPU / {memory} GB")
    return fits


def describe_a1(a1: list[Instance]) -> str:
    """'3 × A1 at 1.33 OCPU / 8 GB', or the totals when the instances differ."""
    sizes = {(i.ocpus, i.memory_gb) for i in a1}
    if len(sizes) == 1:
        ocpus, memory = sizes.pop()
        return f"{len(a1)} × A1 at {num(ocpus)} OCPU / {num(memory)} GB"
    return f"{len(a1)} A1 instances with {num(sum(i.ocpus for i in a1))} OCPU / {num(sum(i.memory_gb for i in a1))} GB in total"


def _a1_history(a1: list[Instance], total_ocpu_hours: float, total_gb_hours: float, limits: Limits) -> str:
    """'It fitted before <date>' when an earlier allowance held this design; empty otherwise."""
    ocpu_eras, gb_eras = limit_eras("a1_ocpu_hours_month"), limit_eras("a1_gb_hours_month")
    for ocpu_era, gb_era in zip(reversed(ocpu_eras), reversed(gb_eras)):
        if ocpu_era.effective_until and ocpu_era.effective_until < limits.on:
            if total_ocpu_hours <= ocpu_era.value + _EPSILON and total_gb_hours <= gb_era.value + _EPSILON:
                since = limits.limit("a1_ocpu_hours_month").effective_from.isoformat()
                return (
                    f"{describe_a1(a1)} fitted the allowance before {since} ({num(ocpu_era.value)} OCPU-hours + "
                    f"{num(gb_era.value)} GB-hours a month); it no longer fits. "
                )
    return ""


def _assess_a1(usage: Usage, out: Assessment) -> None:
    limits, prices, hours = out.limits, out.prices, out.prices.hours_per_month
    a1 = usage.a1()
    ocpu_pool, gb_pool = _Pool(limits["a1_ocpu_hours_month"]), _Pool(limits["a1_gb_hours_month"])
    for inst in a1:
        over_ocpu = ocpu_pool.take(inst.ocpus * hours)
        over_gb = gb_pool.take(inst.memory_gb * hours)
        out.charge(inst.id, over_ocpu * (prices["a1_ocpu_hour"] or 0) + over_gb * (prices["a1_gb_hour"] or 0))
        ratio_min, ratio_max = limits["a1_memory_gb_per_ocpu_min"], limits["a1_memory_gb_per_ocpu_max"]
        if inst.ocpus > 0 and not ratio_min <= inst.memory_gb / inst.ocpus <= ratio_max:
            out.findings.append(Finding(
                "a1_memory_ratio", "limit",
                f"{inst.id}: {num(inst.memory_gb)} GB for {num(inst.ocpus)} OCPU is outside {num(ratio_min)}–{num(ratio_max)} GB per OCPU",
                0.0, "GB/OCPU", 0.0,
                f"give {inst.id} between {num(ratio_min * inst.ocpus)} and {num(ratio_max * inst.ocpus)} GB", (inst.id,)))
        if abs(inst.ocpus - round(inst.ocpus)) > _EPSILON:
            out.findings.append(Finding(
                "a1_whole_ocpus", "warning",
                f"{inst.id}: {num(inst.ocpus)} OCPU is not a whole number; A1 OCPUs come in whole units",
                0.0, "OCPU", None, f"use {max(1, math.floor(inst.ocpus))} OCPU", (inst.id,)))
    if ocpu_pool.excess <= 0 and gb_pool.excess <= 0:
        return
    total_ocpus, total_gb = sum(i.ocpus for i in a1), sum(i.memory_gb for i in a1)
    eq_ocpus, eq_gb = limits.a1_equivalent(hours)
    history = _a1_history(a1, total_ocpus * hours, total_gb * hours, limits)
    fits = a1_fits(limits, hours, len(a1))
    fix = (f"{history}The allowance since {limits.limit('a1_ocpu_hours_month').effective_from.isoformat()} is "
           f"≈ {num(math.floor(eq_ocpus + _EPSILON))} OCPU / {num(math.floor(eq_gb + _EPSILON))} GB in total; fits: "
           + ", or ".join(fits))
    ids = tuple(i.id for i in a1)
    for pool, key, label, total, price_key in (
        (ocpu_pool, "a1_ocpu_hours_month", "OCPU", total_ocpus, "a1_ocpu_hour"),
        (gb_pool, "a1_gb_hours_month", "GB", total_gb, "a1_gb_hour"),
    ):
        if pool.excess > 0:
            unit = f"{label}-hours"
            out.findings.append(Finding(
                key.removesuffix("_month"), "charge",
                f"A1 {unit}: {len(a1)} instance(s), {num(total)} {label} × {hours} h = {num(total * hours)} {unit}/month, "
                f"over the {num(limits[key])} free by {num(pool.excess)}",
                pool.excess, unit, _cost(pool.excess, prices[price_key]), fix, ids))


def _assess_micro_and_paid(usage: Usage, out: Assessment) -> None:
    limits, prices, hours = out.limits, out.prices, out.prices.hours_per_month
    micro = usage.micro()
    allowed = int(limits["micro_instances"])
    extra = micro[allowed:]
    if extra:
        each = prices.micro_substitute_month()
        for inst in extra:
            out.charge(inst.id, each)
        sub = prices.micro_substitute
        out.findings.append(Finding(
            "micro_instances", "charge",
            f"VM.Standard.E2.1.Micro: {len(micro)} instances, over the {allowed} free by {len(extra)} "
            f"(each priced as {sub.shape} {num(sub.ocpus)} OCPU / {num(sub.memory_gb)} GB)",
            float(len(extra)), "instances", None if each is None else each * len(extra),
            f"keep at most {allowed} micro instances: remove {', '.join(i.id for i in extra)}",
            tuple(i.id for i in extra)))
    for inst in usage.paid():
        shape = prices.shapes.get(inst.shape)
        month = None if shape is None else (inst.ocpus * shape.ocpu_hour + inst.memory_gb * shape.gb_hour) * hours
        out.charge(inst.id, month)
        out.findings.append(Finding(
            "paid_shape", "charge",
            f"{inst.id}: shape {inst.shape} ({num(inst.ocpus)} OCPU / {num(inst.memory_gb)} GB) is not Always Free"
            + ("" if shape else "; no list price known for this shape"),
            inst.ocpus, "OCPU", month,
            f"use {A1_SHAPE} within the A1 allowance, or {MICRO_SHAPE} (at most {allowed})", (inst.id,)))


def _assess_storage(usage: Usage, out: Assessment) -> None:
    limits, prices = out.limits, out.prices
    pool = _Pool(limits["block_storage_gb"])
    price = prices["block_volume_gb_month"]
    minimum = limits["boot_volume_min_gb"]
    for inst in usage.instances:
        out.charge(inst.id, _cost(pool.take(inst.boot_volume_gb), price))
        if inst.boot_volume_gb < minimum:
            out.findings.append(Finding(
                "boot_volume_min", "limit",
                f"{inst.id}: boot volume {num(inst.boot_volume_gb)} GB is below the {num(minimum)} GB the service accepts",
                minimum - inst.boot_volume_gb, "GB", 0.0, f"set {inst.id}'s boot volume to {num(minimum)} GB", (inst.id,)))
    for vol in usage.volumes:
        out.charge(vol.id, _cost(pool.take(vol.size_gb), price))
    if pool.excess > 0:
        boot = sum(i.boot_volume_gb for i in usage.instances)
        block = sum(v.size_gb for v in usage.volumes)
        out.findings.append(Finding(
            "block_storage", "charge",
            f"block storage: {num(boot)} GB of boot volumes + {num(block)} GB of block volumes = {num(boot + block)} GB, "
            f"over the {num(limits['block_storage_gb'])} GB free by {num(pool.excess)} GB",
            pool.excess, "GB", _cost(pool.excess, price),
            f"shrink boot and block volumes by {num(pool.excess)} GB (boot volumes can be {num(minimum)} GB each)",
            tuple(i.id for i in usage.instances) + tuple(v.id for v in usage.volumes)))
    allowed = int(limits["volume_backups"])
    extra = usage.backups[allowed:]
    if extra:
        costs = [_cost(b.size_gb, prices["volume_backup_gb_month"]) for b in extra]
        for backup, cost in zip(extra, costs):
            out.charge(backup.id, cost)
        out.findings.append(Finding(
            "volume_backups", "charge",
            f"volume backups: {len(usage.backups)}, over the {allowed} free by {len(extra)} "
            f"({num(sum(b.size_gb for b in extra))} GB)",
            float(len(extra)), "backups", _sum_known(costs),
            f"keep at most {allowed} volume backups (shorten the backup policy's retention)", tuple(b.id for b in extra)))


def _assess_network(usage: Usage, out: Assessment) -> None:
    limits, prices, hours = out.limits, out.prices, out.prices.hours_per_month
    count_pool = _Pool(limits["flexible_load_balancers"] * hours)
    mbps_pool = _Pool(limits["load_balancer_max_mbps"] * hours)
    base_over = bandwidth_over = 0.0
    for lb in usage.load_balancers:
        base = count_pool.take(hours)
        bandwidth = mbps_pool.take(lb.max_mbps * hours)
        base_over, bandwidth_over = base_over + base, bandwidth_over + bandwidth
        out.charge(lb.id, base * (prices["load_balancer_hour"] or 0) + bandwidth * (prices["load_balancer_mbps_hour"] or 0))
        if lb.shape != "flexible":
            out.findings.append(Finding(
                "load_balancer_shape", "limit", f"{lb.id}: load balancer shape {lb.shape!r} is not the free 'flexible' shape",
                0.0, "", 0.0, "use shape 'flexible' with minimum and maximum bandwidth 10 Mbps", (lb.id,)))
    free_mbps = num(limits["load_balancer_max_mbps"])
    if base_over > 0:
        extra = int(round(base_over / hours))
        out.findings.append(Finding(
            "load_balancers", "charge",
            f"flexible load balancers: {len(usage.load_balancers)}, over the {num(limits['flexible_load_balancers'])} free by {extra}",
            float(extra), "load balancers", _cost(base_over, prices["load_balancer_hour"]),
            "keep one flexible load balancer, or use a network load balancer (no charge) for the others",
            tuple(lb.id for lb in usage.load_balancers)))
    if bandwidth_over > 0:
        out.findings.append(Finding(
            "load_balancer_bandwidth", "charge",
            f"load balancer bandwidth: {num(sum(lb.max_mbps for lb in usage.load_balancers))} Mbps maximum × {hours} h, "
            f"over the {num(limits['load_balancer_max_mbps'] * hours)} free Mbps-hours by {num(bandwidth_over)}",
            bandwidth_over, "Mbps-hours", _cost(bandwidth_over, prices["load_balancer_mbps_hour"]),
            f"set minimum and maximum bandwidth to {free_mbps} Mbps on a single load balancer",
            tuple(lb.id for lb in usage.load_balancers)))
    allowed_ips = int(limits["reserved_public_ipv4"])
    extra_ips = usage.reserved_ips[allowed_ips:]
    if extra_ips:
        out.over_count(
            "reserved_public_ipv4", "charge",
            f"reserved public IPv4: {len(usage.reserved_ips)}, over the {allowed_ips} free by {len(extra_ips)}",
            extra_ips, _cost(hours, prices["reserved_ipv4_hour"]), "addresses",
            f"keep at most {allowed_ips} reserved addresses; use ephemeral public IPs for the rest")
    allowed_vcns = int(limits["vcns"])
    if len(usage.vcns) > allowed_vcns:
        extra_vcns = usage.vcns[allowed_vcns:]
        out.findings.append(Finding(
            "vcns", "limit", f"VCNs: {len(usage.vcns)}, over the {allowed_vcns} allowed by {len(extra_vcns)}",
            float(len(extra_vcns)), "VCNs", 0.0, f"use at most {allowed_vcns} VCNs (subnets are free)", tuple(extra_vcns)))


def _assess_object_storage_and_egress(usage: Usage, out: Assessment) -> None:
    limits, prices = out.limits, out.prices
    over_gb = usage.object_storage_gb - limits["object_storage_gb"]
    if over_gb > _EPSILON:
        cost = _cost(over_gb, prices["object_storage_gb_month"])
        out.charge("object-storage", cost)
        out.findings.append(Finding(
            "object_storage", "charge",
            f"object storage: {num(usage.object_storage_gb)} GB, over the {num(limits['object_storage_gb'])} GB free by {num(over_gb)} GB",
            over_gb, "GB", cost, "keep buckets under 20 GB in total (lifecycle rules can delete old objects)", ("object-storage",)))
    free_gb = limits["egress_tb_month"] * GB_PER_TB
    over_egress = usage.egress_gb_month - free_gb
    if over_egress > _EPSILON:
        cost = _cost(over_egress, prices["egress_gb"])
        out.charge("egress", cost)
        out.findings.append(Finding(
            "egress", "charge",
            f"outbound data: {num(usage.egress_gb_month)} GB/month, over the {num(free_gb)} GB free by {num(over_egress)} GB",
            over_egress, "GB", cost, f"keep outbound transfer under {num(limits['egress_tb_month'])} TB a month", ("egress",)))


def _assess_images_and_nlb(usage: Usage, out: Assessment) -> None:
    """Network load balancers beyond the free one, and custom images an Always-Free-only tenancy cannot hold."""
    limits, prices, hours = out.limits, out.prices, out.prices.hours_per_month
    allowed = int(limits["network_load_balancers"])
    extra = usage.network_load_balancers[allowed:]
    if extra:
        out.over_count(
            "network_load_balancers", "limit",
            f"network load balancers: {len(usage.network_load_balancers)}, over the {allowed} Always Free allows by {len(extra)}",
            extra, _cost(hours, prices["network_load_balancer_hour"]), "network load balancers",
            f"keep one network load balancer: put every listener (6443, 50000, ...) on it; remove {', '.join(extra)}")
    free_images = int(limits["custom_images_always_free_only"])
    if usage.always_free_only and len(usage.custom_images) > free_images:
        over = usage.custom_images[free_images:]
        out.findings.append(Finding(
            "custom_images", "limit",
            f"custom images: {len(usage.custom_images)} to import, but an Always-Free-only tenancy has the service limit "
            f"custom-image-count = {free_images}",
            float(len(over)), "custom images", 0.0,
            "upgrade the account to Pay As You Go (Always Free resources stay free) and set cloud.oci.account: "
            "pay-as-you-go, or give the image the tenancy already has (clusters[].image_ocid for a Talos image, "
            "cloud.oci.host_image.image_ocid for the Proxmox VE hosts' Debian image)",
            tuple(over)))


def assess(usage: Usage, *, on: dt.date | None = None, limits: Limits | None = None, prices: Prices | None = None) -> Assessment:
    """Every way `usage` leaves the Always Free tier on day `on` (default today), with the monthly charge of each."""
    out = Assessment(limits=limits or limits_on(on), prices=prices or prices_on(on))
    _assess_a1(usage, out)
    _assess_micro_and_paid(usage, out)
    _assess_storage(usage, out)
    _assess_network(usage, out)
    _assess_object_storage_and_egress(usage, out)
    _assess_images_and_nlb(usage, out)
    assess_vault(usage, out)
    return out


_MBPS_IN_SHAPE = re.compile(r"(\d+)\s*Mbps", re.IGNORECASE)


def fixed_shape_mbps(shape: str) -> float | None:
    """Bandwidth of a legacy fixed load balancer shape like '100Mbps' or '10Mbps-Micro'."""
    match = _MBPS_IN_SHAPE.search(shape)
    return float(match.group(1)) if match else None
