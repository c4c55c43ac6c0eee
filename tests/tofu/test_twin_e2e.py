"""The twin of the OCI module, applied for real from a spec: outputs, validations, capacity."""

from __future__ import annotations

import ipaddress
import json
import random
from pathlib import Path
from typing import Any

import pytest
from platform_fixture import SSH_KEY, platform

from tierzero.adapters.capacity import Backoff, CapacityAttempt, CapacityHunter
from tierzero.adapters.tofu_workspace import TFVARS_FILE, stage_layer, write_json, write_tfvars
from tierzero.errors import OperationError
from tierzero.render.tofu_vars import ad_candidates, parse_outputs, tfvars_for


def accept(plan: dict) -> None:
    return None


@pytest.fixture
def twin(make_runner, tmp_path: Path):
    workdir = tmp_path / "cloud"
    stage_layer("oci_twin", workdir)
    return make_runner(workdir=workdir)


def test_twin_applies_a_spec_and_outputs_plausible_values(twin) -> None:
    spec = platform()
    write_tfvars(spec, twin.workdir, ssh_public_key=SSH_KEY)
    twin.init()
    plan, _ = twin.plan_guard_apply(accept)
    assert plan.changes.remove == 0

    cloud = parse_outputs(twin.output())
    assert set(cloud.instances) == {"a1-1", "a1-2", "bastion"}
    subnet = ipaddress.ip_network("10.0.1.0/24")
    private = [ipaddress.ip_address(i.private_ip) for i in cloud.instances.values()]
    assert all(ip in subnet for ip in private) and len(set(private)) == 3
    assert cloud.instances["a1-2"].availability_domain == "AD-2"
    assert cloud.instances["a1-1"].kind == "a1" and cloud.instances["a1-1"].shape == "VM.Standard.A1.Flex"
    assert cloud.instances["bastion"].roles == ("bastion", "quorum-witness")
    assert cloud.bastion_ip == cloud.instances["bastion"].public_ip  # its reserved address
    assert cloud.instances["a1-1"].ocid.startswith("ocid1.instance.oc1.eu-frankfurt-1.")
    assert cloud.vcn_id.startswith("ocid1.vcn.") and cloud.budget_id.startswith("ocid1.budget.")

    again, result = twin.plan_guard_apply(accept)
    assert again.changes.is_noop and result.change_summary.is_noop
    assert parse_outputs(twin.output()) == cloud  # deterministic


def test_twin_plans_identically_from_identical_specs(twin) -> None:
    first = write_tfvars(platform(), twin.workdir, ssh_public_key=SSH_KEY).read_bytes()
    second = write_tfvars(platform(), twin.workdir, ssh_public_key=SSH_KEY).read_bytes()
    assert first == second
    assert list(json.loads(first)) == sorted(json.loads(first))


def _with(values: dict[str, Any], **changes: Any) -> dict[str, Any]:
    updated = json.loads(json.dumps(values))
    for key, value in changes.items():
        updated[key] = value
    return updated


A1 = {"ocpus": 1, "memory_gb": 6, "boot_volume_gb": 50, "availability_domain": "AD-1"}
MICRO = {"roles": ["bastion"], "boot_volume_gb": 50, "availability_domain": "AD-1"}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"admin_cidrs": ["0.0.0.0/0"]}, "never contain 0.0.0.0/0"),
        ({"admin_cidrs": ["10.0.0.0/8", "::/0"]}, "never contain 0.0.0.0/0"),
        ({"a1_instances": {"x": dict(A1, ocpus=1.5)}}, "whole OCPUs"),
        ({"a1_instances": {"x": dict(A1, boot_volume_gb=40)}}, "at least 50 GB"),
        ({"a1_instances": {"x": dict(A1, ocpus=2), "y": dict(A1)}}, "Always Free allows 2"),
        ({"a1_instances": {"x": dict(A1, memory_gb=8), "y": dict(A1)}}, "Always Free allows 12 GB"),
        ({"block_volumes": {"big": {"size_gb": 100, "instance": "a1-1"}}}, "allows 200 GB"),
        ({"micro_instances": {n: dict(MICRO) for n in "abc"}}, "allows 2"),
    ],
    ids=[
        "world-admin", "ipv6-world-admin", "fractional-ocpu", "small-boot",
        "ocpus-total", "memory-total", "storage-total", "micro-count",
    ],
)
def test_free_tier_validations_fail_the_plan(twin, changes: dict[str, Any], message: str) -> None:
    values = _with(tfvars_for(platform(), ssh_public_key=SSH_KEY), **changes)
    write_json(twin.workdir / TFVARS_FILE, values)
    twin.init()
    with pytest.raises(OperationError) as caught:
        twin.plan()
    log = caught.value.hint.split("log: ")[1].rstrip(")")
    assert message in caught.value.message or message in Path(log).read_text().replace("\\n", " ")


def test_capacity_hunt_moves_only_failed_instances_to_a_free_ad(make_runner, tmp_path: Path) -> None:
    events: list[Any] = []
    workdir = tmp_path / "cloud"
    stage_layer("oci_twin", workdir)
    runner = make_runner(workdir=workdir, env={"TIERZERO_TWIN_FULL_ADS": "AD-1"}, events=events)
    spec = platform()
    runner.init()
    sleeps: list[float] = []
    hunter = CapacityHunter(
        runner,
        variables=tfvars_for(spec, ssh_public_key=SSH_KEY),
        tfvars_path=workdir / TFVARS_FILE,
        ad_candidates=ad_candidates(spec),
        guard=accept,
        deadline_seconds=600,
        backoff=Backoff(base_seconds=1),
        sleep=sleeps.append,
        rng=random.Random(3),
    )
    hunter.run()

    cloud = parse_outputs(runner.output())
    ads = {name: i.availability_domain for name, i in cloud.instances.items()}
    # a1-2 was pinned... to AD-2, which had room; a1-1 and the bastion started in the full AD-1.
    assert ads == {"a1-1": "AD-2", "a1-2": "AD-2", "bastion": "AD-2"}
    attempts = [e for e in events if isinstance(e, CapacityAttempt)]
    assert len(attempts) == 1 and set(attempts[0].instances) == {"a1-1", "bastion"}
    completed = [e.address for e in events if e.type == "apply_complete" and "a1-2" in (e.address or "")]
    assert completed == ['terraform_data.a1["a1-2"]']  # created once, never touched again


def test_apply_cloud_layer_in_one_call_on_the_twin(tofu_binary, plugin_cache: Path, tmp_path: Path) -> None:
    from tierzero.layers.oci import apply_cloud_layer, read_cloud_outputs

    events: list[Any] = []
    guarded: list[dict] = []
    workdir = tmp_path / "cloud"
    result = apply_cloud_layer(
        platform(), workdir, guard=guarded.append, twin=True, ssh_public_key=SSH_KEY,
        binary=tofu_binary, plugin_cache_dir=plugin_cache, on_event=events.append,
    )
    assert set(result.outputs.instances) == {"a1-1", "a1-2", "bastion"}
    assert result.capacity_retries == 0 and len(guarded) == 1
    assert result.plan.changes.add > 0
    assert read_cloud_outputs(workdir, binary=tofu_binary) == result.outputs
    assert not list(workdir.glob("__init__.py")) and (workdir / "twin.tf").exists()


def test_an_ad_without_a1_is_dropped_and_the_rest_lands_elsewhere(make_runner, tmp_path: Path) -> None:
    """Issue 17 case 6 against the twin: AD-1 answers "shape VM.Standard.A1.Flex not found" for A1 only; the hunt
    drops it for A1 (the micro bastion still lands there) and the A1 hosts land in AD-2."""
    events: list[Any] = []
    workdir = tmp_path / "cloud"
    stage_layer("oci_twin", workdir)
    runner = make_runner(workdir=workdir, env={"TIERZERO_TWIN_NO_A1_ADS": "AD-1"}, events=events)
    spec = platform()
    runner.init()
    hunter = CapacityHunter(
        runner, variables=tfvars_for(spec, ssh_public_key=SSH_KEY), tfvars_path=workdir / TFVARS_FILE,
        ad_candidates=ad_candidates(spec), guard=accept, deadline_seconds=600, backoff=Backoff(base_seconds=1),
        sleep=lambda s: None, rng=random.Random(3),
    )
    hunter.run()
    ads = {name: i.availability_domain for name, i in parse_outputs(runner.output()).instances.items()}
    assert ads == {"a1-1": "AD-2", "a1-2": "AD-2", "bastion": "AD-1"}
    assert list(hunter.dropped) == ["a1_instances"] and list(hunter.dropped["a1_instances"]) == ["AD-1"]
    attempts = [e for e in events if isinstance(e, CapacityAttempt)]
    assert "dropping AD-1 for this run" in attempts[0].message


def test_the_vm_network_is_routed_through_the_first_host_whose_vnic_skips_the_check(twin) -> None:
    """Issue 14: the VCN's route rule for the VM network targets the host that carries its gateway, and only a
    Proxmox host can be that target (the twin mirrors ../oci/network.tf's preconditions)."""
    path = write_tfvars(platform(), twin.workdir, ssh_public_key=SSH_KEY)
    variables = json.loads(path.read_text())
    assert variables["vm_network"] == {"cidr": "10.10.0.0/24", "via_instance": "a1-1", "ports": [6443, 50000]}  # no services here
    twin.init()
    twin.plan_guard_apply(accept)
    state = json.loads((twin.workdir / "terraform.tfstate").read_text())
    route = next(r for r in state["resources"] if r["name"] == "vm_route")["instances"][0]["attributes"]["output"]["value"]
    a1 = {i["index_key"]: i["attributes"]["output"]["value"] for r in state["resources"] if r["name"] == "a1" for i in r["instances"]}
    assert route["destination"] == "10.10.0.0/24" and route["target_instance"] == "a1-1"
    assert route["target_private_ip"] == a1["a1-1"]["private_ip"] and route["target_skips_source_dest_check"] is True
    assert a1["a1-2"]["skip_source_dest_check"] is False  # only the routing host forwards for others

    variables["vm_network"]["via_instance"] = "bastion"  # not a Proxmox host: no route target
    write_json(path, variables)
    with pytest.raises(OperationError) as caught:
        twin.plan_guard_apply(accept)
    assert "vm_network.via_instance must be an A1 instance that is a Proxmox host" in str(caught.value)
