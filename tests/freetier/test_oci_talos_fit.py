"""Issue 15 acceptance: the oci-talos blueprint is $0.00 under the limits in force today and says what it
leaves for workloads next to the Proxmox design; the same blueprint with a third A1, a second network load
balancer or boot volumes over 200 GB is refused with its $/month, in `check` (the spec) and in the plan guard."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

import pytest
from spec_builder import build_spec, spec_data, write_project

from tierzero.freetier.guard import guard_plan
from tierzero.freetier.spec_check import check_spec, usage_from_spec

TODAY = dt.date(2026, 12, 1)
THIRD_A1 = {
    "cloud.oci.a1_instances": [{"name": "talos-cp-1", "ocpus": 1, "memory_gb": 6}, {"name": "talos-w-1", "ocpus": 1, "memory_gb": 6},
                               {"name": "talos-w-2", "ocpus": 1, "memory_gb": 6}],
    "clusters.0.workers": [{"name": "w-1", "instance": "talos-w-1", "ip": "10.0.1.21/24"}, {"name": "w-2", "instance": "talos-w-2", "ip": "10.0.1.22/24"}],
}
BIG_BOOT = {"cloud.oci.a1_instances": [{"name": "talos-cp-1", "ocpus": 1, "memory_gb": 6, "boot_volume_gb": 100},
                                       {"name": "talos-w-1", "ocpus": 1, "memory_gb": 6, "boot_volume_gb": 150}]}
def second_cluster() -> dict:
    """A second cluster on its own instance: a second network load balancer (the A1 allowance is split, not exceeded)."""
    data = spec_data("oci-talos")
    other = json.loads(json.dumps(data["clusters"][0]))
    other.update(name="second", endpoint="https://10.0.1.21:6443", workers=[],
                 control_planes=[{"name": "cp-2", "instance": "talos-w-1", "ip": "10.0.1.21/24"}])
    data["clusters"][0]["workers"] = []
    data["clusters"].append(other)
    return data


def test_the_blueprint_is_free_today_and_says_what_it_leaves_for_workloads():
    report = check_spec(build_spec("oci-talos"), TODAY)
    assert report.verdict == "free" and report.total_usd_month == 0.0
    assert report.capacity is not None
    cores, memory = report.capacity.workloads()
    # 2 x (1 OCPU / 6 GB) minus Talos' and the control plane's reservations (limits/overheads.yaml)
    assert cores == pytest.approx(1.4) and memory == pytest.approx(9.925)
    lines = "\n".join(report.lines())
    assert "left for workloads in total: 1.4 cores / 9.93 GB" in lines
    assert "the Proxmox design (blueprint oci-free-tier" in lines  # compared on the same allowance


def test_the_proxmox_blueprint_compares_itself_with_talos_on_the_instances():
    lines = "\n".join(check_spec(build_spec("oci-free-tier"), TODAY).lines())
    assert "Talos directly on the A1 instances (blueprint oci-talos, native speed) leaves 1.4 cores / 9.93 GB" in lines


@pytest.mark.parametrize("changes, code, usd", [
    (THIRD_A1, "a1_ocpu_hours", 7.32),
    (BIG_BOOT, "block_storage", 1.275),
    ({"cloud.oci.account": "always-free"}, "custom_images", 0.0),
])
def test_check_refuses_with_the_monthly_charge(changes, code, usd):
    report = check_spec(build_spec("oci-talos", changes), TODAY)
    assert report.verdict == "refused"
    (finding,) = [v for v in report.violations if v.code == code]
    assert finding.usd_month == pytest.approx(usd)


def test_a_second_cluster_on_instances_needs_a_second_network_load_balancer():
    from tierzero.spec.models import Platform

    report = check_spec(Platform.model_validate(second_cluster()), TODAY)
    (finding,) = [v for v in report.violations if v.code == "network_load_balancers"]
    assert finding.line().startswith("network load balancers: 2, over the 1 Always Free allows by 1: $0.00/month")


def test_an_existing_image_on_an_always_free_account_imports_nothing_and_is_free():
    spec = build_spec("oci-talos", {"cloud.oci.account": "always-free", "clusters.0.image_ocid": "ocid1.image.oc1.eu-frankfurt-1.aaaa"})
    assert check_spec(spec, TODAY).verdict == "free"


def test_check_prints_the_charge_and_exits_1(tmp_path):
    spec = write_project(tmp_path, "oci-talos", BIG_BOOT)
    proc = subprocess.run([sys.executable, "-m", "tierzero", "check", "-f", str(spec)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "over the 200 GB free by 50 GB: $1.28/month" in proc.stdout


# ------------------------------------------------------------------ the plan guard, on the module's resource types

def _instance(name: str, boot_gb: int = 50) -> dict:
    after = {"shape": "VM.Standard.A1.Flex", "shape_config": [{"ocpus": 1, "memory_in_gbs": 6}],
             "source_details": [{"source_type": "image", "boot_volume_size_in_gbs": boot_gb}]}
    return _rc(f'oci_core_instance.talos["{name}"]', "oci_core_instance", after)


def _rc(address: str, rtype: str, after: dict) -> dict:
    return {"address": address, "mode": "managed", "type": rtype, "name": address.split(".")[1].split("[")[0],
            "change": {"actions": ["create"], "before": None, "after": after, "after_unknown": {}}}


def _nlb(cluster: str) -> dict:
    return _rc(f'oci_network_load_balancer_network_load_balancer.talos["{cluster}"]', "oci_network_load_balancer_network_load_balancer",
               {"is_private": False})


def _plan(*changes: dict) -> dict:
    return {"format_version": "1.2", "resource_changes": list(changes)}


def test_the_guard_accepts_the_blueprints_plan_and_refuses_each_excess_with_its_price():
    free = guard_plan(_plan(_instance("talos-cp-1"), _instance("talos-w-1"), _nlb("main")), on=TODAY)
    assert free.verdict == "free" and free.totals.usd_month == 0.0

    third = guard_plan(_plan(_instance("talos-cp-1"), _instance("talos-w-1"), _instance("talos-w-2"), _nlb("main")), on=TODAY)
    assert third.verdict == "refused" and third.totals.usd_month == pytest.approx(13.908)
    assert any("$7.32/month" in r for r in third.reasons) and any("$6.59/month" in r for r in third.reasons)

    nlbs = guard_plan(_plan(_instance("talos-cp-1"), _instance("talos-w-1"), _nlb("main"), _nlb("second")), on=TODAY)
    assert nlbs.verdict == "refused"
    assert any(r.startswith("network load balancers: 2, over the 1 Always Free allows by 1: $0.00/month") for r in nlbs.reasons)

    boots = guard_plan(_plan(_instance("talos-cp-1", 100), _instance("talos-w-1", 150), _nlb("main")), on=TODAY)
    assert boots.verdict == "refused" and boots.totals.usd_month == pytest.approx(1.275)
    assert any("over the 200 GB free by 50 GB: $1.28/month" in r for r in boots.reasons)


def test_the_proxmox_hosts_debian_image_is_a_custom_image_an_always_free_only_tenancy_cannot_hold():
    """The hosts' image (cloud/host-image) counts like the Talos one: refused on an Always-Free-only account,
    naming both fixes; free with an image the tenancy already has; 0.5 GB of Object Storage while it passes through."""
    refused = check_spec(build_spec("oci-free-tier", {"cloud.oci.account": "always-free"}), TODAY)
    (finding,) = [v for v in refused.violations if v.code == "custom_images"]
    assert finding.ids == ("Proxmox VE hosts: Debian trixie arm64 cloud image",)
    assert "cloud.oci.host_image.image_ocid" in finding.fix and "Pay As You Go" in finding.fix
    given = build_spec("oci-free-tier", {"cloud.oci.account": "always-free", "cloud.oci.host_image": {"image_ocid": "ocid1.image.oc1..deb"}})
    assert check_spec(given, TODAY).verdict == "free" and usage_from_spec(given).custom_images == []
    assert usage_from_spec(build_spec("oci-free-tier")).object_storage_gb == pytest.approx(0.5)
