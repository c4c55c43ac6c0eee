"""Reading `tofu show -json` plans: holdings after apply, nested prior state, odd inputs."""

from __future__ import annotations

import datetime as dt

import pytest

from tierzero.errors import InputError
from tierzero.freetier.guard import guard_plan
from tierzero.freetier.plan_reader import first_block, read_holdings
from tierzero.freetier.plan_values import amount

DAY = dt.date(2026, 7, 1)


def _rc(address, actions, before=None, after=None, rtype="oci_core_vcn", mode="managed"):
    return {"address": address, "mode": mode, "type": rtype, "name": address.rsplit(".", 1)[-1],
            "change": {"actions": actions, "before": before, "after": after}}


@pytest.mark.parametrize("plan", [[], "x", None, {"resource_changes": []}, {"format_version": "0.2"}, {"format_version": "2.0"}, {"format_version": 1}])
def test_rejects_what_is_not_a_format_1_plan(plan):
    with pytest.raises(InputError):
        read_holdings(plan)


def test_accepts_any_1_x_minor():
    for version in ("1.0", "1.2", "1.9"):
        assert read_holdings({"format_version": version}) == []


def test_unknown_actions_are_an_input_error():
    with pytest.raises(InputError, match="unknown plan actions"):
        read_holdings({"format_version": "1.2", "resource_changes": [_rc("oci_core_vcn.a", ["explode"], after={})]})


def test_missing_actions_are_an_input_error():
    with pytest.raises(InputError, match="no address or no change.actions"):
        read_holdings({"format_version": "1.2", "resource_changes": [{"address": "x", "mode": "managed", "change": {}}]})


def test_prior_state_without_changes_still_counts():
    plan = {"format_version": "1.2", "prior_state": {"values": {"root_module": {"resources": [
        {"address": f"oci_core_vcn.v{i}", "mode": "managed", "type": "oci_core_vcn", "values": {}} for i in range(3)]}}}}
    report = guard_plan(plan, on=DAY)
    assert [f.code for f in report.findings] == ["vcns"]


def test_prior_data_sources_are_ignored():
    plan = {"format_version": "1.2", "prior_state": {"values": {"root_module": {"resources": [
        {"address": "data.oci_core_vcn.v", "mode": "data", "type": "oci_core_vcn", "values": {}}]}}}}
    assert read_holdings(plan) == []


def test_forget_keeps_the_object_in_the_tenancy():
    plan = {"format_version": "1.2", "resource_changes": [_rc(f"oci_core_vcn.v{i}", ["forget"], {}, None) for i in range(3)]}
    assert [h.action for h in read_holdings(plan)] == ["forget"] * 3
    assert guard_plan(plan, on=DAY).verdict == "refused"


def test_order_is_prior_first_then_new():
    plan = {"format_version": "1.2",
            "prior_state": {"values": {"root_module": {"resources": [
                {"address": "oci_core_vcn.old", "mode": "managed", "type": "oci_core_vcn", "values": {}}]}}},
            "resource_changes": [_rc("oci_core_vcn.new", ["create"], None, {}), _rc("oci_core_vcn.old", ["update"], {}, {"x": 1})]}
    held = read_holdings(plan)
    assert [(h.address, h.action) for h in held] == [("oci_core_vcn.old", "update"), ("oci_core_vcn.new", "create")]


def test_helpers():
    assert first_block({"b": [{"x": 1}]}, "b") == {"x": 1}
    assert first_block({"b": {"x": 1}}, "b") == {"x": 1}
    assert first_block({"b": []}, "b") == {} and first_block({}, "b") == {}
    assert amount("2", "a", "x") == 2.0 and amount(" 1.5 ", "a", "x") == 1.5 and amount(3, "a", "x") == 3.0
    assert amount(None, "a", "x", 50) == 50 and amount(0, "a", "x") == 0.0


def test_unknown_values_use_documented_defaults():
    after = {"shape": "VM.Standard.A1.Flex"}  # shape_config and source_details still unknown at plan time
    report = guard_plan({"format_version": "1.2", "resource_changes": [
        _rc("oci_core_instance.a", ["create"], None, after, rtype="oci_core_instance"),
        _rc("oci_core_volume.v", ["create"], None, {}, rtype="oci_core_volume")]}, on=DAY)
    inst, vol = report.rows
    assert (inst.ocpus, inst.memory_gb, inst.storage_gb) == (1, 6, 50)
    assert vol.storage_gb == 1024  # OCI's default volume size: far over 200 GB, so refused
    assert report.verdict == "refused"


def _nlbs_and_ips(nlbs: int) -> dict:
    return {"format_version": "1.2", "resource_changes": [
        _rc(f"oci_network_load_balancer_network_load_balancer.n{i}", ["create"], None, {},
            rtype="oci_network_load_balancer_network_load_balancer") for i in range(nlbs)] + [
        _rc(f"oci_core_public_ip.e{i}", ["create"], None, {"lifetime": "EPHEMERAL"}, rtype="oci_core_public_ip") for i in range(5)]}


def test_one_network_load_balancer_and_ephemeral_ips_are_free():
    report = guard_plan(_nlbs_and_ips(1), on=DAY)
    assert report.verdict == "free"
    assert [r.shape for r in report.rows if r.type.startswith("oci_network")] == ["network load balancer"]


def test_a_second_network_load_balancer_is_refused_at_no_charge():
    """Always Free holds one network load balancer; the NLB has no list price, so the line says $0.00."""
    report = guard_plan(_nlbs_and_ips(3), on=DAY)
    assert report.verdict == "refused" and not report.charged
    (finding,) = [f for f in report.findings if f.code == "network_load_balancers"]
    assert finding.ids == ("oci_network_load_balancer_network_load_balancer.n1", "oci_network_load_balancer_network_load_balancer.n2")
    assert "over the 1 Always Free allows by 2: $0.00/month" in finding.line()


def test_deposed_object_is_its_own_holding():
    a1 = {"shape": "VM.Standard.A1.Flex", "shape_config": [{"ocpus": 1, "memory_in_gbs": 6}]}
    state = [
        {"address": "oci_core_instance.h", "mode": "managed", "type": "oci_core_instance", "values": a1},
        {"address": "oci_core_instance.h", "mode": "managed", "type": "oci_core_instance", "values": a1, "deposed_key": "00aa"},
    ]
    changes = [
        {**_rc("oci_core_instance.h", ["no-op"], a1, a1, rtype="oci_core_instance")},
        {**_rc("oci_core_instance.h", ["delete"], a1, None, rtype="oci_core_instance"), "deposed": "00aa"},
    ]
    plan = {"format_version": "1.2", "prior_state": {"values": {"root_module": {"resources": state}}}, "resource_changes": changes}
    held = read_holdings(plan)
    assert [(h.address, h.held) for h in held] == [("oci_core_instance.h", True), ("oci_core_instance.h (deposed 00aa)", False)]
    report = guard_plan(plan, on=DAY)
    assert report.verdict == "free" and report.totals.a1_ocpus == 1  # cleaning up the old copy is not a replacement


def test_moved_resource_is_counted_once():
    a1 = {"shape": "VM.Standard.A1.Flex", "shape_config": [{"ocpus": 2, "memory_in_gbs": 12}]}
    plan = {"format_version": "1.2",
            "prior_state": {"values": {"root_module": {"resources": [
                {"address": "oci_core_instance.old", "mode": "managed", "type": "oci_core_instance", "values": a1}]}}},
            "resource_changes": [{**_rc("module.hosts.oci_core_instance.h", ["no-op"], a1, a1, rtype="oci_core_instance"),
                                  "previous_address": "oci_core_instance.old"}]}
    assert [h.address for h in read_holdings(plan)] == ["module.hosts.oci_core_instance.h"]
    assert guard_plan(plan, on=DAY).verdict == "free"
