"""Real-target wiring: endpoints from the spec, endpoints published by steps, cost checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


from tierzero.adapters.tunnel import BastionUnreachable
from tierzero.cli.session import kubeconfig_path, real_connections
from tierzero.engine.step import Step, StepContext
from tierzero.phases import validate
from tierzero.sandbox import oci
from tierzero.sandbox.harness import Sandbox
from tierzero.spec import Platform
from tierzero.workspace import Workspace
from spec_builder import build_spec

from engine_helpers import make_runner


def _spec(blueprint: str = "oci-free-tier") -> Platform:
    return build_spec(blueprint)


def test_real_connections_from_the_spec(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / ".tierzero")
    spec = _spec()
    conns = real_connections(spec, ws)
    kube = conns.endpoints[("kubernetes", "main")]
    assert (kube.host, kube.port) == ("10.10.0.10", 6443) and kube.extra["kubeconfig"] == str(kubeconfig_path(ws, "main"))
    assert conns.endpoints[("talos", "10.10.0.11")].port == 50000
    assert conns.endpoint("oci", "default").extra["service_endpoint"] is False  # public: reached directly
    # The spec has a bastion: its private addresses are reached only through it, once the cloud phase published it.
    assert conns.tunnel is not None
    with pytest.raises(BastionUnreachable, match="no bastion address is known"):
        conns.endpoint("kubernetes", "main")
    own = _spec("proxmox")
    conns = real_connections(own, ws)
    assert conns.tunnel is None  # own hosts: every address is reached directly
    first = own.proxmox.nodes[0]
    assert conns.endpoint("ssh", first.name).host == str(first.address)
    assert conns.endpoint("proxmox", first.name).port == 8006


async def test_steps_publish_endpoints_on_a_real_run(tmp_path: Path) -> None:
    async def cloud(ctx: StepContext, _inputs: Any = None) -> dict:
        return {"endpoints": [{"kind": "ssh", "name": "pve1", "host": "192.0.2.10", "port": 22, "scheme": "ssh"}]}

    seen: list[str] = []

    async def host(ctx: StepContext, _inputs: Any = None) -> dict:
        seen.append(ctx.connections.endpoint("ssh", "pve1").host)
        return {}

    from tierzero.adapters.connections import Connections

    steps = [Step("cloud/oci", "cloud", "", cloud), Step("hypervisors/x", "hypervisors", "", host, needs=("cloud/oci",))]  # type: ignore[arg-type]
    runner = make_runner(tmp_path, steps, target="real")
    runner.connections = Connections(target="real")
    await runner.run()
    assert seen == ["192.0.2.10"]
    again = make_runner(tmp_path, steps, target="real")  # a later run learns them from the state
    again.connections = Connections(target="real")
    again.context_from_state("hypervisors/x")
    assert again.connections.endpoint("ssh", "pve1").host == "192.0.2.10"


def _oci_rows(tmp_path: Path, arrange: Any) -> dict[str, validate.Row]:
    """validate's OCI rows against the OCI stand-in, after `arrange(state, spec)` put the tenancy in place."""
    spec = _spec()
    box = Sandbox(spec, Workspace(tmp_path / ".tierzero"))
    conns = box.start(only=["oci"])
    try:
        arrange(box.context[oci.SERVER].state, spec)
        ctx = StepContext(spec=spec, workspace=None, target="sandbox", connections=conns, secrets=None, outputs={})  # type: ignore[arg-type]
        return {r.check: r for r in validate.check_oci(ctx)}
    finally:
        box.stop()


def _the_stack(state: oci.OciState, spec: Platform, comp: str = "ocid1.compartment.oc1..stack") -> None:
    """The stack's instances as the OCI module names them (`<metadata.name>-<instance>`)."""
    for a in spec.oci.a1_instances:
        state.instances.append(oci.instance(f"{spec.metadata.name}-{a.name}", oci.A1_SHAPE, a.ocpus, a.memory_gb, "AD-1", comp, "r"))
    for m in spec.oci.micro_instances:
        state.instances.append(oci.instance(f"{spec.metadata.name}-{m.name}", oci.MICRO_SHAPE, 1, 1, "AD-1", comp, "r"))


def test_instances_are_matched_by_the_module_names_and_free_tier_holds(tmp_path: Path) -> None:
    rows = _oci_rows(tmp_path, _the_stack)
    assert rows["OCI instances running"].status == "pass", rows["OCI instances running"]
    assert rows["OCI within Always Free"].status == "pass" and "A1 2 OCPU / 12 GB" in rows["OCI within Always Free"].evidence
    assert rows["cost this month"].status == "pass" and rows["cost this month"].evidence.startswith("0.00 USD over 1 usage item")


def test_instances_named_as_in_the_spec_are_not_the_stack(tmp_path: Path) -> None:
    def spec_names(state: oci.OciState, spec: Platform) -> None:  # what validate used to look for
        for a in spec.oci.a1_instances:
            state.instances.append(oci.instance(a.name, oci.A1_SHAPE, a.ocpus, a.memory_gb, "AD-1", spec.oci.tenancy_ocid, "r"))

    row = _oci_rows(tmp_path, spec_names)["OCI instances running"]
    assert row.status == "fail" and "homelab-a1-1 missing" in row.evidence


def test_an_instance_of_another_stack_counts_toward_the_free_tier(tmp_path: Path) -> None:
    def crowded(state: oci.OciState, spec: Platform) -> None:
        _the_stack(state, spec)  # 2 OCPU / 12 GB: the whole allowance
        # Another project's A1 instance, in another compartment of the same tenancy.
        state.compartments.append({"id": "ocid1.compartment.oc1..other", "compartmentId": state.tenancy, "name": "other",
                                   "description": "", "lifecycleState": "ACTIVE", "timeCreated": "2026-11-01T00:00:00.000Z"})
        state.instances.append(oci.instance("blog", oci.A1_SHAPE, 1, 6, "AD-2", "ocid1.compartment.oc1..other", "r"))

    rows = _oci_rows(tmp_path, crowded)
    assert rows["OCI instances running"].status == "pass"
    free = rows["OCI within Always Free"]
    assert free.status == "fail" and "not this stack's: blog" in free.evidence and "A1 3 OCPU / 18 GB" in free.evidence, free


def test_the_free_tier_row_never_passes_on_no_instances(tmp_path: Path) -> None:
    rows = _oci_rows(tmp_path, lambda state, spec: None)
    assert rows["OCI within Always Free"].status == "fail" and "no instance" in rows["OCI within Always Free"].evidence
    assert rows["OCI instances running"].status == "fail"
    assert rows["cost this month"].status == "skip"  # no usage record at all: nothing to sum yet


def test_a_usage_record_with_a_cost_fails_validate(tmp_path: Path) -> None:
    def charged(state: oci.OciState, spec: Platform) -> None:
        _the_stack(state, spec)
        state.charge(0.37, service="Block Storage")

    rows = _oci_rows(tmp_path, charged)
    assert rows["cost this month"].status == "fail" and rows["cost this month"].evidence.startswith("0.37 USD")
    assert rows["OCI instances running"].status == "pass"


def test_a_fraction_of_a_cent_is_a_charge(tmp_path: Path) -> None:
    def tiny(state: oci.OciState, spec: Platform) -> None:
        _the_stack(state, spec)
        state.charge(0.003)

    row = _oci_rows(tmp_path, tiny)["cost this month"]
    assert row.status == "fail" and row.evidence.startswith("0.0030 USD"), row
