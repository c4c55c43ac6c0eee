"""Spec fit and capacity on real `Platform` models (built from the oci-free-tier blueprint)."""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path

import pytest
import yaml

from tierzero.freetier.capacity import VmSpec, host_capacity, vm_workload_share
from tierzero.freetier.spec_check import check_spec, usage_from_spec
from tierzero.spec.models import Platform

NEW, OLD = dt.date(2026, 7, 1), dt.date(2026, 6, 1)
BLUEPRINT = yaml.safe_load((Path(__file__).parent / "specs" / "oci-free-tier.yaml").read_text())


def platform(edit=None) -> Platform:
    doc = copy.deepcopy(BLUEPRINT)
    if edit:
        edit(doc)
    return Platform.model_validate(doc)


def oci(doc):
    return doc["cloud"]["oci"]


def test_blueprint_is_free_now():
    report = check_spec(platform(), on=NEW)
    assert report.verdict == "free" and report.total_usd_month == 0
    assert [w.code for w in report.warnings] == ["idle_reclamation"]


def test_usage_from_spec_uses_real_field_names():
    usage = usage_from_spec(platform())
    assert [(i.id, i.shape, i.ocpus, i.memory_gb, i.boot_volume_gb) for i in usage.instances] == [
        ("a1-1", "VM.Standard.A1.Flex", 1, 6, 50),
        ("a1-2", "VM.Standard.A1.Flex", 1, 6, 50),
        ("bastion", "VM.Standard.E2.1.Micro", 0.125, 1, 50),
    ]
    assert usage.reserved_ips == ["bastion-ip"]
    assert usage.vcns == ["homelab-vcn"]
    assert [lb.id for lb in usage.load_balancers] == ["main/ingress-nginx"]  # oci_ccm + ingress LoadBalancer


def test_no_cloud_section_means_nothing_to_charge():
    p = platform(lambda d: d.pop("cloud"))
    assert usage_from_spec(p).instances == []


def _old_design(doc):
    oci(doc)["a1_instances"] = [{"name": f"a1-{i}", "ocpus": 1, "memory_gb": 8, "boot_volume_gb": 50} for i in (1, 2, 3)]


def test_three_hosts_fit_before_and_not_after_the_cut():
    p = platform(_old_design)
    assert check_spec(p, on=OLD).verdict == "free"
    after = check_spec(p, on=NEW)
    assert after.charged
    # 3 OCPU: 2,232 − 1,500 = 732 × 0.01 = 7.32; 24 GB: 17,856 − 9,000 = 8,856 × 0.0015 = 13.284; 4 boot volumes = 200 GB
    assert after.total_usd_month == pytest.approx(20.604)
    lines = after.lines()
    assert lines[0].startswith("free tier (2026-07-01): refused, $20.60/month")
    assert any("2 × A1 at 1 OCPU / 6 GB" in line for line in lines)


# (edit, day, verdict, dollars) — each worked out by hand, 744 h a month
SPEC_CASES = [
    ("blueprint", lambda d: None, NEW, "free", 0.0),
    ("one_host_2x12", lambda d: oci(d).update(a1_instances=[{"name": "a1-1", "ocpus": 2, "memory_gb": 12}]), NEW, "free", 0.0),
    ("big_boot", lambda d: oci(d)["a1_instances"][0].update(boot_volume_gb=150), NEW, "refused", 1.275),  # 150+50+50=250
    ("block_volume", lambda d: oci(d).update(block_volumes=[{"name": "osd", "size_gb": 60, "instance": "a1-1"}]), NEW, "refused", 0.255),
    ("third_micro", lambda d: oci(d).update(micro_instances=[
        {"name": f"m{i}", "roles": ["bastion"]} for i in range(3)]), NEW, "refused", 19.716 + 1.275),  # 5 boot volumes = 250 GB
    ("three_reserved_ips", lambda d: oci(d).update(reserved_ips=[
        {"name": f"ip{i}", "instance": "bastion"} for i in range(3)]), NEW, "refused", 0.0),
    ("2x2x12_old", lambda d: oci(d).update(a1_instances=[
        {"name": f"a1-{i}", "ocpus": 2, "memory_gb": 12} for i in (1, 2)]), OLD, "free", 0.0),
    ("2x2x12_new", lambda d: oci(d).update(a1_instances=[
        {"name": f"a1-{i}", "ocpus": 2, "memory_gb": 12} for i in (1, 2)]), NEW, "refused", 28.044),
]


def a1(*shapes):
    """Replace the A1 hosts: shapes are (ocpus, memory_gb) or (ocpus, memory_gb, boot_volume_gb)."""
    def edit(doc):
        oci(doc)["a1_instances"] = [
            {"name": f"a1-{i}", "ocpus": s[0], "memory_gb": s[1], "boot_volume_gb": s[2] if len(s) > 2 else 50}
            for i, s in enumerate(shapes, start=1)
        ]
    return edit


def both(*edits):
    def edit(doc):
        for e in edits:
            e(doc)
    return edit


def volumes(*sizes):
    return lambda d: oci(d).update(block_volumes=[{"name": f"v{i}", "size_gb": g, "instance": "a1-1"} for i, g in enumerate(sizes)])


def witness(d):
    oci(d)["micro_instances"].append({"name": "witness", "roles": ["quorum-witness"]})


CUT, EVE = dt.date(2026, 6, 15), dt.date(2026, 6, 14)
# Worked by hand, 744 h a month. After the cut the allowance is 1,500 OCPU-h and 9,000 GB-h; before it
# 3,000 and 18,000. A1 $0.01 per OCPU-h, $0.0015 per GB-h; block storage $0.0255 per GB-month over 200 GB.
SPEC_CASES += [
    ("one_host_1x6", a1((1, 6)), NEW, "free", 0.0),
    ("one_host_3x18_new", a1((3, 18)), NEW, "refused", 7.32 + 6.588),  # 2,232-1,500=732 OCPU-h; 13,392-9,000=4,392 GB-h
    ("one_host_3x18_old", a1((3, 18)), OLD, "free", 0.0),
    ("one_host_4x24_old", a1((4, 24)), OLD, "free", 0.0),  # 2,976 <= 3,000 and 17,856 <= 18,000
    ("one_host_4x24_new", a1((4, 24)), NEW, "refused", 14.76 + 13.284),
    ("one_host_4x24_on_the_cut", a1((4, 24)), CUT, "refused", 14.76 + 13.284),
    ("one_host_4x24_the_day_before", a1((4, 24)), EVE, "free", 0.0),
    ("memory_only_over", a1((2, 16)), NEW, "refused", 4.356),  # 1,488 OCPU-h fit; 11,904-9,000=2,904 GB-h
    ("one_gb_too_many", a1((1, 6), (1, 7)), NEW, "refused", 1.008),  # 9,672-9,000=672 GB-h
    ("three_hosts_new", a1((2, 12), (1, 6)), NEW, "refused", 7.32 + 6.588),
    ("three_small_hosts_new", a1((1, 6), (1, 6), (1, 6)), NEW, "refused", 7.32 + 6.588),  # 4 boot volumes: exactly 200 GB
    ("three_small_hosts_old", a1((1, 6), (1, 6), (1, 6)), OLD, "free", 0.0),
    ("boot_volumes_fill_200", a1((1, 6, 75), (1, 6, 75)), NEW, "free", 0.0),  # 75+75+50
    ("boot_volumes_over_200", a1((1, 6, 100), (1, 6, 100)), NEW, "refused", 1.275),  # 250-200=50 GB × 0.0255
    ("block_volume_fills_200", volumes(50), NEW, "free", 0.0),  # 150+50
    ("block_volume_over", volumes(100), NEW, "refused", 1.275),
    ("two_block_volumes_over", volumes(50, 50), NEW, "refused", 1.275),
    ("second_micro_fits", witness, NEW, "free", 0.0),  # boot volumes 50+50+50+50 = 200
    ("second_micro_and_a_volume", both(witness, volumes(50)), NEW, "refused", 1.275),
    ("big_host_two_micros", both(a1((2, 12)), witness), NEW, "free", 0.0),  # 50+50+50
    ("big_host_big_boot", a1((2, 12, 150)), NEW, "free", 0.0),  # 150+50
    ("big_host_bigger_boot", a1((2, 12, 160)), NEW, "refused", 0.255),  # 210-200=10 GB
]


@pytest.mark.parametrize(("case_id", "edit", "day", "verdict", "dollars"), SPEC_CASES, ids=[c[0] for c in SPEC_CASES])
def test_spec_case(case_id, edit, day, verdict, dollars):
    report = check_spec(platform(edit), on=day)
    assert report.verdict == verdict, report.lines()
    assert report.total_usd_month == pytest.approx(dollars, abs=1e-6)


def test_capacity_of_the_blueprint():
    report = check_spec(platform(), on=NEW).capacity
    assert report is not None
    pve1, pve2 = report.hosts
    assert (pve1.cores, pve1.memory_gb, pve1.pve_memory_gb) == (1, 6, 2)
    assert pve1.for_vms_memory_gb == 4 and pve1.vm_memory_gb == 4 and pve1.spare_memory_gb == 0
    # two schedulable control planes of 2 GB: 2 − 0.5 − 0.1 − 1.0 = 0.4 GB each for workloads
    assert pve1.workload_memory_gb == pytest.approx(0.8)
    # pve2: cp-3 (2 GB) and the infisical LXC (1.5 GB); the LXC leaves nothing to Kubernetes
    assert pve2.vm_memory_gb == 3.5 and pve2.workload_memory_gb == pytest.approx(0.4)
    # 2 vCPUs of 1-core VMs on the 0.5 core Proxmox VE leaves: shared, which is allowed, not a deficit
    assert pve1.vcpus_per_core == 4 and report.problems == []
    assert "2 vCPUs on 0.5 cores (4x shared: allowed" in pve1.line() and "spare -" not in "\n".join(report.lines())
    assert any(a.startswith("proxmox_ve_memory_gb") for a in report.assumptions)


def test_capacity_with_ceph_shows_it_does_not_fit_a_6_gb_host():
    def ceph(doc):
        doc["hypervisors"]["proxmox"]["ceph"] = {"enabled": True, "osd_lv_size_gb": 20}
    host = check_spec(platform(ceph), on=NEW).capacity.hosts[0]
    assert host.ceph_memory_gb == 6.0  # one OSD at 4 GB + MON and MGR at 1 GB each
    assert host.for_vms_memory_gb == -2.0
    assert "nothing is left for Talos VMs" in host.problems[0]


def test_host_capacity_for_an_explicit_host():
    vms = [VmSpec("cp", "controlplane", 2, 4, schedulable=False), VmSpec("w", "worker", 4, 8)]
    host = host_capacity("pve", "host 10.0.0.2", 8, 32, vms=vms, pve_memory_gb=2)
    assert host.for_vms_cores == 7.5 and host.for_vms_memory_gb == 30
    assert host.spare_memory_gb == 18 and host.problems == []
    assert host.workload_cores == pytest.approx(3.95) and host.workload_memory_gb == pytest.approx(8 - 0.375 - 0.1)


def test_host_capacity_memory_short():
    host = host_capacity("pve", "x", 2, 6, vms=[VmSpec("w", "worker", 1, 6)], pve_memory_gb=2)
    assert "shrink the VMs by 2 GB" in host.problems[0]


def test_unknown_host_memory_is_reported():
    assert "memory unknown" in host_capacity("pve", "x", None, None, vms=[]).problems[0]


def test_workload_share_of_unschedulable_control_plane_is_zero():
    assert vm_workload_share(VmSpec("cp", "controlplane", 2, 4, schedulable=False)) == (0.0, 0.0)


def test_the_shipped_blueprint_stays_free_today():
    from importlib import resources

    text = resources.files("tierzero.spec").joinpath("blueprints/oci-free-tier.yaml").read_text()
    report = check_spec(Platform.model_validate(yaml.safe_load(text)))
    assert not report.charged, report.lines()
