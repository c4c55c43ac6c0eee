"""`validate` observes the running world: one sandbox deploy of the proxmox blueprint (Ceph, three
hosts, Infisical), then faults injected in the stand-ins (and undone) fail the matching row with
evidence while the other rows keep passing. Before any deploy, the parts without credentials skip."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tierzero.adapters.connections import Endpoint
from tierzero.adapters.retry import Policy
from tierzero.engine.runner import Runner
from tierzero.cli.session import Session
from tierzero.phases import validate
from tierzero.sandbox import fakepve, infisical, talos
from tierzero.sandbox.context import Handle

from sandbox_runs import starter_project

pytestmark = pytest.mark.slow

T = TypeVar("T")
LIVE = ("Proxmox quorum", "Ceph health", "lab: Talos nodes", "lab: etcd members", "infisical: Infisical ready",
        "infisical: machine identity logs in")


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Session, Runner]]:
    session = Session(starter_project(tmp_path_factory.mktemp("live"), "proxmox"), "sandbox")
    with session as runner:
        asyncio.run(runner.run())
        # Ceph down answers 500, which the Proxmox client retries: seconds here, not the validation default.
        runner.connections.retry.proxmox = Policy(base=0.01, cap=0.05, deadline=0.3)
        yield session, runner


def rows(runner: Runner) -> dict[str, validate.Row]:
    found = asyncio.run(validate.run_checks(runner.context_from_state("validate/checks")))
    by_name = {r.check: r for r in found}
    assert len(by_name) == len(found), "check names are unique"
    return by_name


def shared(session: Session, handle: Handle[T]) -> T:
    return session.sandbox.context[handle]


def assert_only_failing(found: dict[str, validate.Row], *failing: str) -> None:
    assert {n for n, r in found.items() if r.status == "fail"} == set(failing), found
    for name in LIVE:
        if name not in failing:
            assert found[name].status == "pass", found[name]


def test_every_live_row_passes_on_the_deployed_world(deployed: tuple[Session, Runner]) -> None:
    found = rows(deployed[1])
    assert_only_failing(found)
    assert "pve1, pve2, pve3" in found["Proxmox quorum"].evidence
    assert found["Ceph health"].evidence.startswith("HEALTH_OK")
    assert "6/6 answer" in found["lab: Talos nodes"].evidence and "lab-w-3 v" in found["lab: Talos nodes"].evidence
    assert "3 members" in found["lab: etcd members"].evidence
    assert "tierzero-infisical-automation" in found["infisical: machine identity logs in"].evidence
    assert found["OCI instances"].status == "skip"  # own hosts: no cloud


def test_lost_quorum_fails_the_quorum_row(deployed: tuple[Session, Runner]) -> None:
    session, runner = deployed
    pve = shared(session, fakepve.SERVER).pve
    pve.lose_quorum()
    try:
        found = rows(runner)
    finally:
        pve.regain_quorum()
    assert_only_failing(found, "Proxmox quorum")
    assert "NOT quorate" in found["Proxmox quorum"].evidence


def test_an_offline_node_is_named_in_the_quorum_row(deployed: tuple[Session, Runner]) -> None:
    session, runner = deployed
    pve = shared(session, fakepve.SERVER).pve
    pve.set_node_offline("pve2")
    try:
        found = rows(runner)
    finally:
        pve.set_node_offline("pve2", offline=False)
    assert_only_failing(found, "Proxmox quorum")
    evidence = found["Proxmox quorum"].evidence
    assert "online members: pve1, pve3" in evidence and "offline: pve2" in evidence


@contextmanager
def endpoint_swapped(runner: Runner, key: tuple[str, str], endpoint: Endpoint) -> Iterator[None]:
    saved = runner.connections.endpoints[key]
    runner.connections.endpoints[key] = endpoint
    try:
        yield
    finally:
        runner.connections.endpoints[key] = saved


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_first_hosts_api_unreachable_asks_the_next_host(deployed: tuple[Session, Runner]) -> None:
    runner = deployed[1]
    with endpoint_swapped(runner, ("proxmox", "pve1"), Endpoint("127.0.0.1", _closed_port(), verify=False)):
        found = rows(runner)
    assert_only_failing(found)
    assert "online members: pve1, pve2, pve3" in found["Proxmox quorum"].evidence


def test_ceph_down_fails_the_ceph_row_with_the_api_error(deployed: tuple[Session, Runner]) -> None:
    session, runner = deployed
    pve = shared(session, fakepve.SERVER).pve
    pve.ceph_down()
    try:
        found = rows(runner)
    finally:
        pve.ceph_recover()
    assert_only_failing(found, "Ceph health")
    assert "rados_connect failed" in found["Ceph health"].evidence


def test_ceph_health_warn_fails_the_ceph_row(deployed: tuple[Session, Runner]) -> None:
    session, runner = deployed
    pve = shared(session, fakepve.SERVER).pve
    pve.ceph_slow(0.0, health="HEALTH_WARN")
    try:
        found = rows(runner)
    finally:
        pve.ceph_recover()
    assert_only_failing(found, "Ceph health")
    assert found["Ceph health"].evidence.startswith("HEALTH_WARN")


async def test_ceph_evidence_carries_the_health_checks() -> None:
    class Api:  # the status document as PVE passes `ceph status` on
        async def call(self, method: str, path: str) -> dict[str, Any]:
            assert (method, path) == ("get", "cluster/ceph/status")
            return {"health": {"status": "HEALTH_WARN", "checks": {"OSD_DOWN": {"severity": "HEALTH_WARN", "summary": {"message": "1 osds down"}}}},
                    "osdmap": {"num_osds": 3, "num_up_osds": 2}}

    row = await validate._ceph_row(Api())
    assert (row.status, row.evidence) == ("fail", "HEALTH_WARN; OSD_DOWN: 1 osds down; 2/3 OSDs up")


def _node(session: Session, name: str) -> Any:
    return next(n for n in shared(session, talos.MACHINES).machines.values() if n.hostname == name)


def test_a_stopped_talos_node_fails_the_talos_row(deployed: tuple[Session, Runner]) -> None:
    session, runner = deployed
    node = _node(session, "lab-w-2")
    node.switch(on=False)
    try:
        found = rows(runner)
    finally:
        node.switch(on=True)
    # its kubelet stops posting status too: the sandbox mirrors a node that is down as NotReady
    assert_only_failing(found, "lab: Talos nodes", "lab: Kubernetes nodes Ready")
    assert "lab-w-2" in found["lab: Kubernetes nodes Ready"].evidence
    evidence = found["lab: Talos nodes"].evidence
    assert "5/6 answer" in evidence and "not answering: lab-w-2" in evidence and "lab-w-1 v" in evidence


def test_an_etcd_member_gone_fails_the_etcd_row(deployed: tuple[Session, Runner]) -> None:
    session, runner = deployed
    node = _node(session, "lab-cp-3")
    node.in_etcd = False  # the node runs, its etcd member was removed
    try:
        found = rows(runner)
    finally:
        node.in_etcd = True
    assert_only_failing(found, "lab: etcd members")
    assert found["lab: etcd members"].evidence.startswith("2 members listed by lab-cp-1 (lab-cp-1, lab-cp-2)")


def test_a_revoked_client_secret_fails_the_login_row_without_leaking_it(deployed: tuple[Session, Runner]) -> None:
    session, runner = deployed
    standin = shared(session, infisical.SERVICES)["infisical"]
    stored = [s for secrets in standin.state.client_secrets.values() for s in secrets]
    assert stored
    for s in stored:
        s["isClientSecretRevoked"] = True
    try:
        found = rows(runner)
    finally:
        for s in stored:
            s["isClientSecretRevoked"] = False
    assert_only_failing(found, "infisical: machine identity logs in")
    evidence = found["infisical: machine identity logs in"].evidence
    assert "tierzero-infisical-automation" in evidence and "401" in evidence
    secret_values = [runner.secrets.get(f"infisical/infisical/{k}") for k in ("client-id", "client-secret")]
    assert all(v and v not in r.evidence for v in secret_values for r in found.values())


def test_an_unready_infisical_fails_the_ready_row(deployed: tuple[Session, Runner]) -> None:
    session, runner = deployed
    standin = shared(session, infisical.SERVICES)["infisical"]
    standin.unready_polls = 1
    try:
        found = rows(runner)
    finally:
        standin.unready_polls = 0
    assert_only_failing(found, "infisical: Infisical ready")
    assert "does not answer 200" in found["infisical: Infisical ready"].evidence


def test_before_any_deploy_the_parts_without_credentials_skip(tmp_path: Path) -> None:
    session = Session(starter_project(tmp_path / "fresh", "proxmox"), "sandbox")
    with session as runner:
        found = rows(runner)
    for name in LIVE:
        assert found[name].status == "skip", found[name]
    assert "no Proxmox API token" in found["Proxmox quorum"].evidence
    assert "no Talos secrets for lab" in found["lab: Talos nodes"].evidence
    assert "never bootstrapped" in found["infisical: Infisical ready"].evidence


def test_a_node_running_another_release_fails_the_talos_row(deployed: tuple[Session, Runner]) -> None:
    """The version is what the node reports (the image its VM booted), compared with the spec's."""
    session, runner = deployed
    node = _node(session, "lab-w-2")
    booted = node.version_tag
    node.version_tag = "v1.12.11"
    try:
        found = rows(runner)
    finally:
        node.version_tag = booted
    assert_only_failing(found, "lab: Talos nodes")
    assert "not the spec's v1.13.9: lab-w-2 runs v1.12.11" in found["lab: Talos nodes"].evidence


def test_every_api_call_of_the_deploy_is_one_the_role_was_made_for(deployed: tuple[Session, Runner]) -> None:
    """Each Proxmox API request the deploy made (fakepve records them) is a call in
    tierzero.adapters.proxmox_privileges.CALLS, whose rules the token's role is computed from."""
    from fakepve import schema as pve_schema

    from tierzero.adapters.proxmox_privileges import CALLS

    session, _runner = deployed
    made = set()
    for method, path, _body in shared(session, fakepve.SERVER).pve.requests:
        match = pve_schema.load().match(path.removeprefix("/api2/json"))
        assert match is not None, path
        made.add((method, match.template))
    assert len(made) >= 15
    assert made - set(CALLS) == set()


def test_a_bug_in_a_check_is_told_apart_from_a_failing_world(monkeypatch: pytest.MonkeyPatch) -> None:
    from tierzero.errors import OperationError

    def check_world(ctx: Any) -> list[validate.Row]:
        raise OperationError("Proxmox API: 595 no route to host")

    async def check_buggy(ctx: Any) -> list[validate.Row]:
        raise TypeError("'NoneType' object is not subscriptable")

    monkeypatch.setattr(validate, "CHECKS", (check_world, check_buggy))
    rows = {r.check: r for r in asyncio.run(validate.run_checks(None))}  # type: ignore[arg-type]
    assert rows["world"].status == "fail" and rows["world"].evidence == "Proxmox API: 595 no route to host"
    assert rows["buggy"].status == "fail" and rows["buggy"].evidence.startswith("internal error in the check (TypeError")
    assert "--debug" in rows["buggy"].evidence
