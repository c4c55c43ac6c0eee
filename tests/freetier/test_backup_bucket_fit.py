"""`check` counts etcd snapshots kept in an OCI bucket against the dated 20 GB Object Storage allowance
(etcd_snapshot_gb per kept snapshot), ignores buckets elsewhere, refuses a `keep` that cannot fit, and
warns that scheduled talos-backup snapshots are never deleted by anything but a lifecycle rule."""

from __future__ import annotations

import datetime as dt

import pytest
from spec_builder import build_spec

from tierzero.freetier.limits import limits_on, overheads
from tierzero.freetier.spec_check import check_spec, usage_from_spec

TODAY = dt.date(2026, 12, 1)
OCI = {"bucket": "etcd", "endpoint": "https://ns.compat.objectstorage.eu-frankfurt-1.oraclecloud.com", "region": "eu-frankfurt-1"}
MINIO = {"bucket": "etcd", "endpoint": "http://minio.lan:9000", "region": "us-east-1"}


def test_kept_snapshots_in_an_oci_bucket_count_and_elsewhere_do_not():
    base = usage_from_spec(build_spec("oci-free-tier")).object_storage_gb
    each = overheads()["etcd_snapshot_gb"].value
    oci = usage_from_spec(build_spec("oci-free-tier", {"clusters.0.etcd_backups": {"keep": 10, "bucket": OCI}})).object_storage_gb
    assert oci == pytest.approx(base + 10 * each) and oci > base
    assert usage_from_spec(build_spec("oci-free-tier", {"clusters.0.etcd_backups": {"keep": 10, "bucket": MINIO}})).object_storage_gb == pytest.approx(base)
    home = build_spec("proxmox", {"clusters.0.etcd_backups": {"keep": 10, "bucket": OCI}})
    assert home.oci is None and usage_from_spec(home).object_storage_gb == pytest.approx(10 * each)  # no cloud section: still the tenancy's


def test_a_keep_that_cannot_fit_the_allowance_is_refused_with_its_charge():
    allowance = limits_on(TODAY)["object_storage_gb"]
    keep = int(allowance / overheads()["etcd_snapshot_gb"].value) + 100
    report = check_spec(build_spec("oci-free-tier", {"clusters.0.etcd_backups": {"keep": min(keep, 1000), "bucket": OCI}}), TODAY)
    (finding,) = [v for v in report.violations if v.code == "object_storage"]
    assert finding.kind == "charge" and finding.usd_month and finding.usd_month > 0
    assert check_spec(build_spec("oci-free-tier", {"clusters.0.etcd_backups": {"keep": 7, "bucket": OCI}}), TODAY).verdict == "free"


def test_a_schedule_into_an_oci_bucket_warns_about_unbounded_growth():
    scheduled = {"keep": 7, "bucket": OCI, "schedule": "0 */6 * * *"}
    warned = check_spec(build_spec("oci-free-tier", {"clusters.0.etcd_backups": scheduled}), TODAY)
    (warning,) = [w for w in warned.warnings if w.code == "scheduled_backups_unbounded"]
    assert "lifecycle rule" in warning.fix and "etcd/main/scheduled/" in warning.fix
    quiet = check_spec(build_spec("oci-free-tier", {"clusters.0.etcd_backups": {**scheduled, "bucket": MINIO}}), TODAY)
    assert not [w for w in quiet.warnings if w.code == "scheduled_backups_unbounded"]

