"""Issue 17 case 5: storage that outlives its instance is counted after the apply, with its $/month.

Right values: block storage $0.0255 per GB-month beyond 200 GB in total, boot volumes included (prices.yaml
block_volume_gb_month; always_free.yaml block_storage_gb, Oracle "Always Free Resources").
Behaviour: oracle/terraform-provider-oci v8.28.0 `internal/service/core/core_instance_resource.go` (Delete sends
preserve_boot_volume / preserve_data_volumes_created_at_launch only when set in state) and the vendored OCI Go SDK
`core/terminate_instance_request_response.go` ("preserveBootVolume … The default value is `false`",
"preserveDataVolumesCreatedAtLaunch … The default value is `true`"), `core/update_instance_source_via_image_details.go`
(isPreserveBootVolumeEnabled keeps the replaced boot volume)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from tierzero.freetier.guard import guard_plan

ON = dt.date(2026, 7, 1)
GB_MONTH = 0.0255


def a1(boot_gb: float, **extra) -> dict:
    return {"shape": "VM.Standard.A1.Flex", "shape_config": [{"ocpus": 1, "memory_in_gbs": 6}],
            "source_details": [{"source_type": "image", "source_id": "ocid1.image.one", "boot_volume_size_in_gbs": boot_gb}], **extra}


def prior(**instances: dict) -> dict:
    resources = [{"address": f"oci_core_instance.{name}", "mode": "managed", "type": "oci_core_instance", "values": values}
                 for name, values in instances.items()]
    return {"values": {"root_module": {"resources": resources}}}


def rc(name: str, actions: list[str], before: dict | None, after: dict | None) -> dict:
    return {"address": f"oci_core_instance.{name}", "mode": "managed", "type": "oci_core_instance", "name": name,
            "change": {"actions": actions, "before": before, "after": after}}


def judge(state: dict, *changes: dict, allow=()):
    return guard_plan({"format_version": "1.2", "prior_state": state, "resource_changes": list(changes)}, on=ON, allow_replace=allow)


@pytest.mark.parametrize(
    ("flag", "usd"),
    [(True, 100 * GB_MONTH), ("true", 100 * GB_MONTH), (False, 0.0), (None, 0.0)],
    ids=["preserve", "preserve-as-string", "explicit-false", "absent-defaults-to-false"],
)
def test_replacing_an_instance_that_preserves_its_boot_volume(flag, usd):
    """Two A1 hosts with 100 GB boot volumes fill the 200 GB. Replacing one with preserve_boot_volume = true
    leaves its old 100 GB boot volume: 300 GB, 100 over = $2.55/month. Absent, the API default (false) deletes it."""
    extra = {} if flag is None else {"preserve_boot_volume": flag}
    old = a1(100, **extra)
    report = judge(prior(pve1=a1(100), pve2=old), rc("pve1", ["no-op"], a1(100), a1(100)),
                   rc("pve2", ["delete", "create"], old, old), allow={"oci_core_instance.pve2"})
    assert report.totals.usd_month == pytest.approx(usd)
    left = [r for r in report.rows if r.action.startswith("left by")]
    if usd:
        assert [(r.address, r.type, r.storage_gb, r.held) for r in left] == [
            ("oci_core_instance.pve2 (preserved boot volume)", "oci_core_boot_volume", 100, True)]
        assert left[0].usd_month == pytest.approx(usd) and report.verdict == "refused"
        assert report.totals.storage_gb == 300
    else:
        assert left == [] and report.verdict == "free"


def test_deleting_an_instance_that_preserves_its_boot_volume():
    """Delete pve2 (150 GB boot, preserved) beside pve1 (100 GB): 250 GB remain, 50 over = $1.275/month."""
    old = a1(150, preserve_boot_volume=True)
    report = judge(prior(pve1=a1(100), pve2=old), rc("pve2", ["delete"], old, None), allow={"oci_core_instance.pve2"})
    assert report.totals.storage_gb == 250
    assert report.totals.usd_month == pytest.approx(50 * GB_MONTH)
    assert any("outlive their instance" in n for n in report.notes)


LAUNCH = {"launch_volume_attachments": [{"type": "paravirtualized", "launch_create_volume_details": [{"size_in_gbs": 100}]}]}


@pytest.mark.parametrize(("flag", "usd"), [(None, 50 * GB_MONTH), (True, 50 * GB_MONTH), (False, 0.0)],
                         ids=["absent-defaults-to-true", "true", "false"])
def test_volumes_created_at_launch_outlive_their_instance_by_default(flag, usd):
    """A micro with a 100 GB launch volume is deleted beside an A1 with a 150 GB boot volume: the launch volume
    stays (API default true) and makes 250 GB, 50 over; preserve_data_volumes_created_at_launch = false deletes it."""
    extra = {} if flag is None else {"preserve_data_volumes_created_at_launch": flag}
    micro = {"shape": "VM.Standard.E2.1.Micro", "source_details": [{"boot_volume_size_in_gbs": 50}], **LAUNCH, **extra}
    report = judge(prior(pve1=a1(150), bastion=micro), rc("bastion", ["delete"], micro, None))
    assert report.totals.usd_month == pytest.approx(usd)
    assert any(r.address == "oci_core_instance.bastion (launch volume 0, preserved)" for r in report.rows) is bool(usd)


@pytest.mark.parametrize(("size", "usd"), [(150, 0.0), (151, GB_MONTH)], ids=["exactly-200", "one-over"])
def test_volumes_created_at_launch_count_while_the_instance_lives(size, usd):
    """launch_volume_attachments create block volumes: 50 GB boot + 150 GB = 200 GB is free, 151 GB is 1 GB over."""
    after = a1(50, launch_volume_attachments=[{"launch_create_volume_details": [{"size_in_gbs": size}]}])
    report = judge({}, rc("pve1", ["create"], None, after))
    assert report.totals.storage_gb == 50 + size
    assert report.totals.usd_month == pytest.approx(usd)


@pytest.mark.parametrize(("preserve", "usd"), [(True, 100 * GB_MONTH), (None, 0.0)], ids=["preserved", "not-preserved"])
def test_replacing_the_boot_volume_in_place_can_keep_the_old_one(preserve, usd):
    """An update of source_details.source_id with is_preserve_boot_volume_enabled = true keeps the old boot volume."""
    before = a1(100)
    after = json.loads(json.dumps(before))
    after["source_details"][0]["source_id"] = "ocid1.image.two"
    if preserve is not None:
        after["source_details"][0]["is_preserve_boot_volume_enabled"] = preserve
    report = judge(prior(pve1=a1(100), pve2=before), rc("pve2", ["update"], before, after))
    assert report.totals.usd_month == pytest.approx(usd)


def test_create_before_destroy_does_not_count_the_boot_volume_twice():
    """In a create-first replace the old copy is held until the end with its boot volume; preserving that volume
    adds nothing further: 100 + 100 (new) + 100 (old copy) = 300 GB, $2.55 of storage, not $5.10; the three A1
    instances during the switch cost 13.908 as in plans/expectations.yaml (08_replace_a1_create_first_over)."""
    old = a1(100, preserve_boot_volume=True)
    report = judge(prior(pve1=a1(100), pve2=old), rc("pve2", ["create", "delete"], old, a1(100)), allow={"oci_core_instance.pve2"})
    assert report.totals.storage_gb == 300
    assert report.totals.usd_month == pytest.approx(13.908 + 100 * GB_MONTH)
    assert [r for r in report.rows if r.action.startswith("left by")] == []


def test_a_reserved_ip_left_unassigned_still_counts():
    """A RESERVED public IP outlives the instance it was assigned to: deleting the instance leaves it held
    (Always Free: 2 reserved IPv4; a third is charged, no public list price, prices.yaml reserved_ipv4_hour)."""
    ip = {"lifetime": "RESERVED", "private_ip_id": "ocid1.privateip.one"}
    state = prior(pve1=a1(50))
    state["values"]["root_module"]["resources"] += [
        {"address": f"oci_core_public_ip.r{i}", "mode": "managed", "type": "oci_core_public_ip", "values": ip} for i in range(3)]
    report = judge(state, rc("pve1", ["delete"], a1(50), None), allow={"oci_core_instance.pve1"})
    assert [r.address for r in report.rows if r.type == "oci_core_public_ip" and r.held] == [f"oci_core_public_ip.r{i}" for i in range(3)]
    assert report.totals.unpriced == 1 and report.verdict == "refused"


# -- issue 17 case 8: the volume key is free; the guard prices Vault from the dated data ----------------------


def kms(name: str, rtype: str, after: dict, unknown: dict | None = None) -> dict:
    return {"address": f"{rtype}.{name}", "mode": "managed", "type": rtype, "name": name,
            "change": {"actions": ["create"], "before": None, "after": after, "after_unknown": unknown or {}}}


def test_software_keys_and_virtual_vaults_are_free():
    """Always Free Resources, Vault (always_free.yaml vault_hsm_key_versions): software-protected keys and DEFAULT
    vaults carry no charge, however many; the module's volume key is one of them."""
    changes = [kms("v", "oci_kms_vault", {"vault_type": "DEFAULT"})]
    changes += [kms(f"k{i}", "oci_kms_key", {"protection_mode": "SOFTWARE"}) for i in range(30)]
    report = guard_plan({"format_version": "1.2", "resource_changes": changes}, on=ON)
    assert report.verdict == "free" and len([r for r in report.rows if r.type == "oci_kms_key"]) == 30


@pytest.mark.parametrize(("count", "mode", "verdict"), [(20, "HSM", "free"), (21, "HSM", "refused"), (21, None, "refused")],
                         ids=["20-hsm", "21-hsm", "21-default-is-hsm"])
def test_hsm_key_versions_beyond_twenty_are_charged(count, mode, verdict):
    """20 HSM key versions are free; the provider's default protection mode is HSM (terraform-provider-oci
    website/docs/r/kms_key.html.markdown: "By default, a key's protection mode is set to `HSM`")."""
    after = {} if mode is None else {"protection_mode": mode}
    changes = [kms(f"k{i}", "oci_kms_key", after) for i in range(count)]
    report = guard_plan({"format_version": "1.2", "resource_changes": changes}, on=ON)
    assert report.verdict == verdict
    assert report.totals.unpriced == (count - 20 if count > 20 else 0)  # no public list price: charged, unknown


def test_a_virtual_private_vault_is_never_free_and_an_unknown_mode_is_refused():
    report = guard_plan({"format_version": "1.2", "resource_changes": [kms("v", "oci_kms_vault", {"vault_type": "VIRTUAL_PRIVATE"})]}, on=ON)
    assert report.verdict == "refused" and {f.code for f in report.findings} == {"virtual_private_vault"}
    unknown = guard_plan({"format_version": "1.2", "resource_changes": [
        kms("k", "oci_kms_key", {"protection_mode": None}, {"protection_mode": True})]}, on=ON)
    assert unknown.unknowns and "oci_kms_key.k: protection_mode" in unknown.unknowns[0]
