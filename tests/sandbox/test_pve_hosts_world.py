"""The stand-in Proxmox hosts persist in the sandbox world: a second start on the same world (after
stop(), or after the first was abandoned as a kill -9 leaves it) shows a client over real SSH the
cluster, packages, files and tokens the first left, and the tokens are still API tokens in fakepve."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest

from tierzero.adapters.connections import Connections, RetryPolicies
from tierzero.adapters.proxmox import connect
from tierzero.adapters.retry import Policy
from tierzero.adapters.ssh import close_all, ssh_client
from tierzero.errors import OperationError
from tierzero.sandbox.fakepve import start_for_spec
from tierzero.sandbox.harness import Sandbox
from tierzero.sandbox.pve_hosts import PveHosts, hosts_for_spec, start_pve_hosts
from tierzero.sandbox.pve_hosts import DOCUMENT
from tierzero.sandbox import pve_hosts
from tierzero.sandbox.world import World
from tierzero.workspace.layout import Workspace

TOKEN = ["pveum", "user", "token", "add", "root@pam", "tierzero", "--privsep", "0", "--output-format", "json"]
FAST = Policy(base=0.01, cap=0.05, deadline=1.0)




def _fast(conns: Connections) -> Connections:
    conns.retry = RetryPolicies(default=FAST, ssh=FAST)
    return conns


def _ssh(hosts: Any, ws: Workspace) -> Connections:
    """Connections to the stand-in hosts with the workspace key, retrying fast."""
    return _fast(hosts.connections(Connections(target="sandbox", ssh_key=ws.ssh_key, known_hosts=ws.root / "known_hosts")))


async def _run(conns: Connections, host: str, command: str | list[str], *, input: str | None = None, check: bool = True) -> Any:
    return await ssh_client(conns, host).run(command, input=input, check=check)


async def _build_cluster(conns: Connections) -> str:
    """What the hypervisors phase leaves behind, over real SSH: returns the token secret."""
    await _run(conns, "pve1", "pvecm create tierzero")
    await _run(conns, "pve2", "pvecm add 192.168.10.11")
    await _run(conns, "pve1", "apt-get install -y corosync-qdevice")
    await _run(conns, "pve2", "cat > /etc/tierzero/marker", input="written by run one\n")
    return json.loads((await _run(conns, "pve1", TOKEN)).stdout)["value"]


async def _sees_cluster(conns: Connections, secret: str) -> None:
    status = (await _run(conns, "pve3", "pvecm status", check=False))
    assert status.exit_status == 2  # pve3 never joined, and still has not
    status = (await _run(conns, "pve2", "pvecm status")).stdout
    assert "Name:             tierzero" in status and "Quorate:          Yes" in status
    members = (await _run(conns, "pve2", "pvecm nodes")).stdout
    assert " pve1\n" in members and " pve2 (local)\n" in members
    listed = json.loads((await _run(conns, "pve1", "pveum user token list root@pam --output-format json")).stdout)
    assert [t["tokenid"] for t in listed] == ["tierzero"]
    assert (await _run(conns, "pve1", "dpkg -s corosync-qdevice")).ok
    assert not (await _run(conns, "pve2", "dpkg -s corosync-qdevice", check=False)).ok
    assert (await _run(conns, "pve2", "cat /etc/tierzero/marker")).stdout == "written by run one\n"
    again = await _run(conns, "pve1", TOKEN, check=False)
    assert again.exit_status == 255 and "already exists" in again.stderr  # never issued twice
    nodes = await connect(conns, "pve1", "root@pam!tierzero", secret).call("GET", "/nodes")
    assert sorted(n["node"] for n in nodes) == ["pve1", "pve2", "pve3"]


async def test_second_sandbox_finds_the_cluster_and_token(spec, ws):
    box = Sandbox(spec, ws)
    conns = _fast(box.start(only=["pve-hosts", "fakepve"]))
    try:
        secret = await _build_cluster(conns)
        await close_all(conns)
    finally:
        box.stop()

    again = Sandbox(spec, ws)
    conns = _fast(again.start(only=["pve-hosts", "fakepve"]))
    try:
        await _sees_cluster(conns, secret)
        await close_all(conns)
    finally:
        again.stop()


async def test_a_restarted_sandbox_refuses_a_wrong_token(spec, ws):
    box = Sandbox(spec, ws)
    conns = _fast(box.start(only=["pve-hosts", "fakepve"]))
    try:
        await _build_cluster(conns)
        await close_all(conns)
    finally:
        box.stop()
    again = Sandbox(spec, ws)
    conns = _fast(again.start(only=["pve-hosts", "fakepve"]))
    try:
        with pytest.raises(OperationError, match="401"):
            await connect(conns, "pve1", "root@pam!tierzero", "not-the-secret").call("GET", "/nodes")
    finally:
        again.stop()


@pytest.mark.parametrize("fakepve_first", [True, False])
async def test_restored_tokens_are_api_tokens_whichever_starts_first(spec, ws, fakepve_first):
    world = World.open(ws)
    nodes, witnesses = hosts_for_spec(spec)
    first = start_pve_hosts(nodes, ws.ssh_public_key, witnesses=witnesses, world=world.file(DOCUMENT))
    conns = _ssh(first, ws)
    try:
        await _run(conns, "pve1", "pvecm create tierzero")
        secret = json.loads((await _run(conns, "pve1", TOKEN)).stdout)["value"]
        await close_all(conns)
    finally:
        first.stop()

    fake = start_for_spec(spec)
    hosts: PveHosts | None = None
    try:
        if fakepve_first:  # hosts started against a fakepve that is already up
            hosts = start_pve_hosts(nodes, ws.ssh_public_key, witnesses=witnesses, pve=fake.pve, world=World.open(ws).file(DOCUMENT))
        else:  # the fakepve factory links itself to hosts already running
            hosts = start_pve_hosts(nodes, ws.ssh_public_key, witnesses=witnesses, world=World.open(ws).file(DOCUMENT))
            hosts.pve = fake.pve
        api = _fast(fake.connections(Connections(target="sandbox")))
        version = await connect(api, "pve1", "root@pam!tierzero", secret).call("GET", "/nodes")
        assert version
    finally:
        if hosts is not None:
            hosts.stop()
        fake.stop()


async def test_killed_run_resumes_from_the_file(spec, ws):
    """The first hosts are never stopped: what the client was told had finished is on disk."""
    nodes, witnesses = hosts_for_spec(spec)
    file = World.open(ws).file(DOCUMENT)
    abandoned = start_pve_hosts(nodes, ws.ssh_public_key, witnesses=witnesses, world=file)
    conns = _ssh(abandoned, ws)
    await _run(conns, "pve1", "pvecm create tierzero")
    await _run(conns, "pve2", "pvecm add 192.168.10.11")
    await _run(conns, "pve3", "apt-get install -y ceph-common")
    secret = json.loads((await _run(conns, "pve1", TOKEN)).stdout)["value"]
    await close_all(conns)

    resumed = start_pve_hosts(nodes, ws.ssh_public_key, witnesses=witnesses, world=World.open(ws).file(DOCUMENT))
    try:
        conns = _ssh(resumed, ws)
        assert resumed.cluster.members == ["pve1", "pve2"]
        assert resumed.cluster.tokens == {"root@pam!tierzero": secret}
        assert "pve1 (local)" in (await _run(conns, "pve1", "pvecm nodes")).stdout
        assert (await _run(conns, "pve3", "dpkg -s ceph-common")).ok
        # the root keys other hosts trust did not change either
        assert resumed.hosts["pve2"].root_pubkey == abandoned.hosts["pve2"].root_pubkey
        await close_all(conns)
    finally:
        resumed.stop()
        abandoned.stop()


async def test_document_is_encrypted_private_and_written_only_on_change(spec, ws):
    nodes, witnesses = hosts_for_spec(spec)
    file = World.open(ws).file(DOCUMENT)
    hosts = start_pve_hosts(nodes, ws.ssh_public_key, witnesses=witnesses, world=file)
    conns = _ssh(hosts, ws)
    try:
        await _run(conns, "pve1", "pvecm create tierzero")
        secret = json.loads((await _run(conns, "pve1", TOKEN)).stdout)["value"]
        writes = file.writes
        await _run(conns, "pve1", "pvecm status")
        await _run(conns, "pve1", "pveversion")
        assert file.writes == writes  # reads change nothing on disk
        await _run(conns, "pve1", "apt-get install -y jq")
        assert file.writes == writes + 1
        await close_all(conns)
    finally:
        hosts.stop()

    raw = file.path.read_bytes()
    assert raw.startswith(b"age-encryption.org/v1")
    for plain in (secret.encode(), b"pvecm", b"corosync", b"root@pam", b"192.168.10.11"):
        assert plain not in raw
    assert stat.S_IMODE(file.path.stat().st_mode) == 0o600
    doc = file.load()
    assert doc is not None and doc["cluster"]["tokens"] == {"root@pam!tierzero": secret}
    assert "port" not in doc["hosts"]["pve1"] and doc["hosts"]["pve1"]["packages"] == ["jq"]


async def test_world_keeps_its_hosts_and_adds_the_specs_new_ones(spec, ws):
    nodes, witnesses = hosts_for_spec(spec)
    file = World.open(ws).file(DOCUMENT)
    first = start_pve_hosts(nodes[:2], ws.ssh_public_key, world=file)
    conns = _ssh(first, ws)
    try:
        await _run(conns, "pve1", "pvecm create tierzero")
        await close_all(conns)
        first.set_offline("pve2")  # a fault is part of the world too
    finally:
        first.stop()

    second = start_pve_hosts(nodes, ws.ssh_public_key, witnesses=witnesses, world=World.open(ws).file(DOCUMENT))
    conns = _ssh(second, ws)
    try:
        assert sorted(second.hosts) == sorted(name for name, _ in nodes + witnesses)
        assert second.hosts["pve1"].in_cluster and not second.hosts["pve3"].in_cluster
        assert second.hosts["pve3"].root_pubkey  # the new host got a key, and it is saved
        assert World.open(ws).file(DOCUMENT).load()["hosts"]["pve3"]["root_pubkey"] == second.hosts["pve3"].root_pubkey
        with pytest.raises(OperationError, match="cannot reach"):
            await _run(conns, "pve2", "hostname")
        second.set_offline("pve2", False)
        conns = _ssh(second, ws)
        assert (await _run(conns, "pve2", "hostname")).stdout == "pve2\n"
        await close_all(conns)
    finally:
        second.stop()


def test_without_a_world_nothing_is_written(spec, ws):
    box = Sandbox(spec, ws, persist=False)
    box.start(only=["pve-hosts"])
    try:
        assert box.context[pve_hosts.HOSTS].persist is None
    finally:
        box.stop()
    assert not (Path(ws.root) / "sandbox" / "world").exists()
