"""Spec fit: does the platform in tierzero.yaml stay inside OCI Always Free on a given day?"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tierzero.freetier.capacity import CapacityReport, capacity_report
from tierzero.freetier.cost import A1_SHAPE, MICRO_SHAPE, Finding, Instance, LoadBalancer, Usage, Volume, assess, usd
from tierzero.freetier.limits import limits_on, overheads

if TYPE_CHECKING:
    from tierzero.spec.models import Platform

IDLE_RECLAIM = Finding(
    "idle_reclamation",
    "warning",
    "Oracle may reclaim Always Free instances that stay idle for 7 days: 95th-percentile CPU, network and (for A1) "
    "memory use all under 20%",
    0.0,
    "",
    None,
    "keep at least one of them above 20% on every instance (running Talos VMs usually keep A1 memory above it); "
    "a quiet micro bastion is the likeliest to go",
)


@dataclass
class FitReport:
    limits_date: dt.date
    violations: list[Finding]
    warnings: list[Finding]
    total_usd_month: float
    capacity: CapacityReport | None = None

    @property
    def charged(self) -> bool:
        return any(v.kind == "charge" for v in self.violations)

    @property
    def refused(self) -> bool:
        return bool(self.violations)

    @property
    def verdict(self) -> str:
        return "refused" if self.refused else "free"

    def lines(self) -> list[str]:
        """One line per violation, then warnings, then the capacity report: what `tierzero check` prints."""
        out = [f"free tier ({self.limits_date.isoformat()}): {self.verdict}, {usd(self.total_usd_month)}/month"]
        out += [f"  ✗ {v.line()}" for v in self.violations]
        out += [f"  ! {w.line()}" for w in self.warnings]
        if self.capacity is not None:
            out.append("capacity:")
            out += [f"  {line}" for line in self.capacity.lines()]
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "charged": self.charged,
            "limits_date": self.limits_date.isoformat(),
            "usd_month": round(self.total_usd_month, 4),
            "violations": [v.as_dict() for v in self.violations],
            "warnings": [w.as_dict() for w in self.warnings],
            "capacity": None if self.capacity is None else self.capacity.as_dict(),
        }


def usage_from_spec(platform: Platform) -> Usage:
    """What the spec's cloud.oci section creates, as the cost model counts it. Empty without a cloud section."""
    oci = platform.oci
    if oci is None:
        return Usage(object_storage_gb=_backup_bucket_gb(platform))
    limits = limits_on()
    instances = [Instance(i.name, A1_SHAPE, float(i.ocpus), float(i.memory_gb), float(i.boot_volume_gb)) for i in oci.a1_instances]
    instances += [
        Instance(m.name, MICRO_SHAPE, limits["micro_ocpus"], limits["micro_memory_gb"], float(m.boot_volume_gb))
        for m in oci.micro_instances
    ]
    talos_clusters = [c for c in platform.clusters if c.on_instances]
    imported = [c for c in talos_clusters if c.image_ocid is None]
    # the Proxmox VE hosts' Debian image (tierzero.phases.host_image), unless the spec names one the tenancy has
    hosts_on_instances = platform.has_proxmox and any(n.instance for n in platform.proxmox.nodes)
    host_image = [f"Proxmox VE hosts: Debian {platform.proxmox.install.suite} arm64 cloud image"] \
        if hosts_on_instances and oci.host_image.image_ocid is None else []
    return Usage(
        instances=instances,
        volumes=[Volume(v.name, float(v.size_gb)) for v in oci.block_volumes],
        load_balancers=_ccm_load_balancers(platform),
        reserved_ips=[ip.name for ip in oci.reserved_ips],
        # tierzero's cloud layer creates one VCN per platform (cloud.oci.network).
        vcns=[f"{platform.metadata.name}-vcn"],
        # one network load balancer per cluster on A1 instances: 6443 and 50000 on the same NLB
        network_load_balancers=[f"{c.name}-nlb" for c in talos_clusters],
        # one custom image per cluster on A1 instances that gives no image_ocid (imported from Object Storage)
        custom_images=[f"{c.name}: Talos {c.talos_version} oracle-{c.arch}" for c in imported] + host_image,
        always_free_only=oci.account == "always-free",
        object_storage_gb=len(imported) * overheads()["talos_oracle_image_gb"].value
        + len(host_image) * overheads()["debian_cloud_image_gb"].value + _backup_bucket_gb(platform),
    )


def _backup_bucket_gb(platform: Platform) -> float:
    """etcd snapshots `tierzero backup` keeps in OCI Object Storage (etcd_backups.bucket on an OCI endpoint):
    `keep` of them per cluster, each sized by the etcd_snapshot_gb assumption. A bucket elsewhere (MinIO, AWS)
    is not the tenancy's."""
    each = overheads()["etcd_snapshot_gb"].value
    return sum(c.etcd_backups.keep * each for c in platform.clusters if c.etcd_backups.bucket is not None and c.etcd_backups.bucket.is_oci)


def _scheduled_backup_warnings(platform: Platform) -> list[Finding]:
    """talos-backup deletes nothing: its snapshots pile up in an OCI bucket until a lifecycle rule removes them."""
    out = []
    for c in platform.clusters:
        bucket = c.etcd_backups.bucket
        if c.etcd_backups.schedule is not None and bucket is not None and bucket.is_oci:
            out.append(Finding(
                "scheduled_backups_unbounded", "warning",
                f"{c.name}: the scheduled etcd backup ({c.etcd_backups.schedule}) adds a snapshot to {bucket.bucket} every run "
                "and never deletes one, so the bucket grows past the 20 GB Object Storage Always Free allows", 0.0, "",
                None, f"add an Object Storage lifecycle rule deleting objects under {c.etcd_backups.prefix(c.name)}/scheduled/ "
                      "after a few days (OCI Console: bucket, Lifecycle Policy Rules)", (bucket.bucket,)))
    return out


def _ccm_load_balancers(platform: Platform) -> list[LoadBalancer]:
    """The OCI cloud controller turns an ingress-nginx LoadBalancer Service into one flexible load balancer,
    which tierzero annotates as 10/10 Mbps (the free shape)."""
    lbs = []
    for cluster in platform.clusters:
        enabled = cluster.addons.enabled()
        ingress = enabled.get("ingress_nginx")
        if "oci_ccm" in enabled and ingress is not None and getattr(ingress, "service_type", "") == "LoadBalancer":
            lbs.append(LoadBalancer(f"{cluster.name}/ingress-nginx"))
    return lbs


def check_usage(usage: Usage, on: dt.date | None = None, *, capacity: CapacityReport | None = None) -> FitReport:
    """Fit of a `Usage` on day `on` (default today): violations with their monthly charge, and warnings."""
    assessment = assess(usage, on=on)
    warnings = list(assessment.warnings)
    if usage.instances:
        warnings.append(IDLE_RECLAIM)
    return FitReport(assessment.limits.on, assessment.violations, warnings, assessment.total_usd_month, capacity)


def check_spec(platform: Platform, on: dt.date | None = None) -> FitReport:
    """Fit of the whole spec on day `on` (default today), with the per-host capacity report."""
    report = check_usage(usage_from_spec(platform), on, capacity=capacity_report(platform))
    report.warnings += _scheduled_backup_warnings(platform)
    return report


@dataclass
class FitCheck:
    """What `tierzero check` shows for the free tier: lines to print, a JSON payload, and whether it would charge."""

    charged: bool
    refused: bool
    lines: list[str] = field(default_factory=list)
    payload: dict[str, Any] = field(default_factory=dict)


def fit_check(report: FitReport) -> FitCheck:
    return FitCheck(report.charged, report.refused, report.lines(), {"free_tier": report.as_dict()})
