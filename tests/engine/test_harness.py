"""The sandbox harness: builtin stand-ins, the registration API, and validation rows observed on a
deployed sandbox world with faults injected in its stand-ins."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tierzero.adapters.connections import Endpoint
from tierzero.adapters.kubernetes import Kube
from tierzero.engine.runner import Runner
from tierzero.cli.session import Session
from tierzero.errors import OperationError
from tierzero.phases import validate
from tierzero.sandbox import bastion, fakepve, infisical, talos
from tierzero.sandbox.context import SandboxContext, StandIn
from tierzero.sandbox.harness import STANDINS, Sandbox
from tierzero.spec import Platform
from tierzero.workspace import Workspace
from spec_builder import build_spec, write_project


def _spec() -> Platform:
    return build_spec("oci-free-tier")


def test_a_standin_added_to_the_table_starts_and_stops(tmp_path: Path) -> None:
    started: list[str] = []

    def start(box: SandboxContext) -> Callable[[], None]:
        for node in box.spec.proxmox.nodes:
            box.connections.add("ssh", node.name, Endpoint("127.0.0.1", 1, scheme="ssh"))
        started.append("up")
        return lambda: started.append("down")

    table = (*STANDINS[:2], StandIn("test-hosts", start))
    box = Sandbox(_spec(), Workspace(tmp_path / ".tierzero"), standins=table)
    with box as conns:
        assert conns.target == "sandbox" and started == ["up"]
        assert conns.endpoint("ssh", "pve2").scheme == "ssh"
        assert conns.endpoint("kubernetes", "main").host == "127.0.0.1"
        assert conns.endpoint("oci", "default").port > 0
        kube = Kube.connect(conns, "main")
        assert sorted(n.name for n in kube.nodes()) == ["cp-1", "cp-2", "cp-3"]
    assert started == ["up", "down"]


def test_the_table_names_each_standin_once_and_refuses_unknown_names(tmp_path: Path) -> None:
    names = [s.name for s in STANDINS]
    assert len(names) == len(set(names)) >= 9
    box = Sandbox(_spec(), Workspace(tmp_path / ".tierzero"), persist=False)
    with pytest.raises(ValueError, match="no stand-ins named \\['fakepv'\\]"):
        box.start(only=["fakepv"])
    with pytest.raises(TypeError, match="unknown sandbox options"):
        Sandbox(_spec(), Workspace(tmp_path / ".tierzero"), talos_reboot=1)


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Session, Runner]]:
    """The oci-free-tier blueprint deployed in the sandbox, in-process (faults below are undone)."""
    root = tmp_path_factory.mktemp("harness")
    session = Session(write_project(root, "oci-free-tier"), "sandbox")
    with session as runner:
        asyncio.run(runner.run())
        yield session, runner


def _rows(runner: Runner) -> dict[str, validate.Row]:
    return {r.check: r for r in asyncio.run(validate.run_checks(runner.context_from_state("validate/checks")))}


@contextmanager
def _faults(session: Session) -> Iterator[None]:
    """Quorum lost, Talos on cp-2 stopped, the machine identity's client secret revoked."""
    box = session.sandbox.context
    pve = box[fakepve.SERVER].pve
    node = next(n for n in box[talos.MACHINES].machines.values() if n.hostname == "cp-2")
    secrets = [s for group in box[infisical.SERVICES]["infisical"].state.client_secrets.values() for s in group]
    pve.lose_quorum()
    node.switch(on=False)
    for s in secrets:
        s["isClientSecretRevoked"] = True
    try:
        yield
    finally:
        pve.regain_quorum()
        node.switch(on=True)
        for s in secrets:
            s["isClientSecretRevoked"] = False


# cp-2 off: its Talos API and (the sandbox mirrors it) its Node, which goes NotReady
FAULTED = {"Proxmox quorum", "main: Talos nodes", "main: Kubernetes nodes Ready", "infisical: machine identity logs in"}


@pytest.mark.slow
def test_validation_rows_pass_and_fail(deployed: tuple[Session, Runner]) -> None:
    session, runner = deployed
    rows = _rows(runner)
    assert {n for n, r in rows.items() if r.status != "pass"} == {"Ceph health"}, rows  # Ceph is off in this blueprint
    assert "pve1, pve2" in rows["Proxmox quorum"].evidence and "3/3 answer" in rows["main: Talos nodes"].evidence
    with _faults(session):
        rows = _rows(runner)
    assert {n for n, r in rows.items() if r.status == "fail"} == FAULTED, rows
    assert "NOT quorate" in rows["Proxmox quorum"].evidence
    assert "not answering: cp-2" in rows["main: Talos nodes"].evidence
    assert "401" in rows["infisical: machine identity logs in"].evidence
    assert rows["main: etcd members"].status == "pass" and rows["infisical: Infisical ready"].status == "pass"
    assert {r.status for r in _rows(runner).values()} == {"pass", "skip"}  # the faults were undone


@pytest.mark.slow
def test_validate_step_fails_with_every_failed_row(deployed: tuple[Session, Runner]) -> None:
    session, runner = deployed
    step = validate.steps(runner.spec)[0]
    saved = runner.connections.endpoints.pop(("kubernetes", "main"))  # a check that cannot reach its API fails, it does not crash
    try:
        with _faults(session), pytest.raises(OperationError) as failed:
            asyncio.run(step.run(runner.context_from_state(step.id), None))
    finally:
        runner.connections.endpoints[("kubernetes", "main")] = saved
    message = failed.value.message
    assert message.startswith("validation failed: ")
    for check in (*(FAULTED - {"main: Kubernetes nodes Ready"}), "kubernetes"):  # that row has no API to ask here
        assert f"{check} (" in message
    assert asyncio.run(step.run(runner.context_from_state(step.id), None))["rows"]  # and passes again once all is back


@pytest.mark.slow
def test_every_private_address_is_reached_only_through_the_bastion(deployed: tuple[Session, Runner]) -> None:
    session, runner = deployed
    box = session.sandbox.context
    server = box[bastion.SERVER]
    plays = bastion.stands_for(box)
    assert len(plays) == 7  # two Proxmox APIs, the VIP, three Talos nodes, Infisical
    for (kind, name), address in plays.items():
        endpoint = runner.connections.endpoint(kind, name)
        assert (endpoint.host, endpoint.extra["via"], endpoint.extra["behind"]) == ("127.0.0.1", "bastion", f"{address[0]}:{address[1]}")
    before = len(server.opened())
    assert {r.status for r in _rows(runner).values()} == {"pass", "skip"}
    opened = server.opened()
    assert len(opened) > before and {h for h, _ in opened} <= {a for a, _ in plays.values()}
    assert {("10.10.0.10", 6443), ("10.10.0.11", 50000), ("10.0.1.10", 8006), ("10.10.0.30", 8080)} <= set(opened), opened
    assert not [c for c in server.channels if not c.opened]  # no forward asked for an address nothing plays


@pytest.mark.slow
def test_the_hosts_boot_the_debian_image_the_images_step_imported(deployed: tuple[Session, Runner]) -> None:
    """images -> cloud: the host image's OCID is the layer's a1_image_ocid, and each Proxmox host was launched in
    the sandbox's OCI from it (the stand-in refuses an image without the A1 shape)."""
    import json

    from tierzero.sandbox import oci

    session, runner = deployed
    image = runner.state.get("cloud/host-image").outputs
    tfvars = json.loads((session.workspace.root / "cloud" / "tierzero.auto.tfvars.json").read_text())
    assert image["imported"] is True and tfvars["a1_image_ocid"] == image["image_id"]
    storage = session.sandbox.context[oci.SERVER].state.storage
    assert storage.shapes[image["image_id"]] == ["VM.Standard.A1.Flex"]
    launched = sorted((i["displayName"], i["imageId"]) for i in storage.launched.values())
    assert [(name.rsplit("-", 2)[-2:], img) for name, img in launched] == [(["a1", "1"], image["image_id"]), (["a1", "2"], image["image_id"])]
    started = list(runner.state.records())
    assert started.index("cloud/host-image") < started.index("cloud/oci") < started.index("hypervisors/prepare/pve1")


@pytest.mark.slow
def test_the_vcn_routes_the_vm_network_through_the_first_host(deployed: tuple[Session, Runner]) -> None:
    """The bastion reached the VMs because the cloud layer routed their network (route rule to a1-1's private IP,
    its VNIC skipping the source/destination check, the ports admitted): the VCN lost nothing on the way."""
    from tierzero.sandbox import oci

    session, runner = deployed
    box = session.sandbox.context
    st = box[oci.SERVER].state
    assert st.vcn_route("10.10.0.11", 50000) is None and st.vcn_route("10.10.0.11", 22) is not None
    assert box[bastion.SERVER].lost == []
    cloud = runner.state.get("cloud/oci").outputs
    (route,) = [i["value"] for i in st._stack() if i["name"] == "vm_route"]
    assert route["target_private_ip"] == cloud["instances"]["a1-1"]["private_ip"] and route["ports"] == [6443, 8080, 50000]
