"""fakepve's world on disk: snapshot/restore round trips, write-through before answers and task
ends, and a second sandbox (after a clean stop, or after kill -9) finding the guests, files and
tokens of the first through the production client (tierzero.adapters.proxmox)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fakepve import FakePve

from spec_builder import build_spec
from tierzero.adapters.connections import Connections, Endpoint
from tierzero.adapters.proxmox import ProxmoxClient, connect
from tierzero.sandbox import fakepve, pve_hosts
from tierzero.sandbox.context import SandboxContext
from tierzero.sandbox.fakepve import DOCUMENT, FakePveServer, restore, snapshot, start_fakepve
from tierzero.sandbox.world import World
from tierzero.spec import Platform
from tierzero.workspace import Workspace
from tierzero.workspace.keys import create_age_identity

TOKEN_ID = "root@pam!tierzero"
SECRET = "5ecret-0f-the-sandbox-token-7a1c"
TEMPLATE = "debian-12-standard_12.7-1_amd64.tar.zst"
ISO = "talos-amd64.iso"


def _spec() -> Platform:
    return build_spec("oci-free-tier")


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    ws = Workspace(tmp_path / ".tierzero")
    ws.root.mkdir(parents=True)
    create_age_identity(ws)
    return ws


def _box(ws: Workspace, hosts: Any = None) -> SandboxContext:
    box = SandboxContext(_spec(), ws, Connections(target="sandbox"), Path(ws.root) / "sandbox", world=World.open(ws))
    if hosts is not None:
        box.put(pve_hosts.HOSTS, hosts)
    return box


def _client(conns: Connections) -> ProxmoxClient:
    return connect(conns, "pve1", TOKEN_ID, SECRET)


def _rich_pve() -> FakePve:
    """A FakePve holding a bit of everything the snapshot keeps."""
    pve = FakePve()
    pve.cluster_name = "lab"
    pve.add_node("pve2")
    pve.set_node_offline("pve2")
    vm = pve.add_vm(100, "cp-1", node="pve1", status="running", config={"memory": 2048, "scsi0": "local-lvm:vm-100-disk-0,size=8G"},
                    pending={"cores": "4", "net1": None}, pool="talos")
    vm.snapshots["pre"] = {"memory": 1024, "snaptime": 1700000000, "description": "before"}
    vm.stats = {"cpu": 0.5}
    vm.ha_state = "started"
    pve.add_vm(9000, "tmpl", template=True, lock="backup")
    ct = pve.add_ct(300, "infisical", node="pve2", status="running", config={"net0": "name=eth0,bridge=vmbr0"})
    ct.snapshots["s1"] = {"hostname": "infisical", "snaptime": 1}
    pve.add_ct(301, "stopped-ct", pending={"memory": 1024})
    pve.store_file("local", ISO, 1024)
    pve.store_file("local", TEMPLATE, 2048, content="vztmpl")
    pve.storages["local-lvm"]["volumes"] = {"vm-100-disk-0": {"content": "images", "format": "raw", "size": 8 << 30}}
    pve.pool_info["talos"] = {"comment": "the cluster", "storage": {"local-lvm", "local"}}
    pve.users["ops@pve"] = "pw"
    pve.apitokens[TOKEN_ID] = SECRET
    pve.token_privsep = {TOKEN_ID: 0}
    pve.grant("ops@pve", "/vms/100", "VM.Audit", "VM.PowerMgmt")
    pve.firewall_config("vm", vmid=100)["rules"].append({"type": "in", "action": "ACCEPT", "pos": 0})
    pve.firewall_config("cluster")["aliases"]["lan"] = {"name": "lan", "cidr": "10.0.0.0/24"}
    pve.password = "changed-by-a-client"
    return pve


def test_round_trip_is_exact_through_json() -> None:
    before = _rich_pve()
    data = snapshot(before)
    fresh = FakePve()
    restore(fresh, json.loads(json.dumps(data)))
    assert snapshot(fresh) == data
    assert data["vms"][0]["status"] == "running" and data["cts"][0]["vmid"] == 300
    # The live shapes come back, not just equal JSON: fakepve's own code relies on them.
    assert fresh.storages["local"]["files"] == {ISO} and fresh.pools == {"talos": {100}}
    assert fresh.pool_info["talos"]["storage"] == {"local", "local-lvm"}
    assert fresh.acl == {"ops@pve": [("/vms/100", {"VM.Audit", "VM.PowerMgmt"})]}
    assert list(fresh.__dict__["_fw_state"]["guests"]) == [100]
    assert fresh.nodes["pve2"] == {"online": False} and fresh.password == "changed-by-a-client"
    for vmid in (100, 9000, 300, 301):
        a, b = before.guest(vmid), fresh.guest(vmid)
        assert (type(a), a.digest(), a.name, a.lock, a.template, a.pool) == (type(b), b.digest(), b.name, b.lock, b.template, b.pool)
    assert fresh.ct(300).pid == before.ct(300).pid and fresh.ct(301).pending == {"memory": 1024}
    assert fresh.vm(100).started_at == before.vm(100).started_at


def test_restore_ignores_unknown_keys_and_keeps_defaults_for_missing_ones() -> None:
    pve = FakePve()
    restore(pve, {"version": 99, "from_the_future": {"x": 1}, "vms": [{"vmid": 100, "name": "a", "status": "running", "new_field": 1}],
                  "storages": {"local": {"type": "dir", "files": ["x.iso"], "shiny": True}}})
    assert pve.vm(100).status == "running" and pve.vm(100).config == {"name": "a"}
    assert pve.storages["local"]["files"] == {"x.iso"} and pve.nodes == {"pve1": {"online": True}} and pve.cts == []


def test_the_document_is_encrypted_and_private(workspace: Workspace) -> None:
    world = World.open(workspace).file(DOCUMENT)
    server = start_fakepve(["pve1"], world=world)
    try:
        server.pve.apitokens[TOKEN_ID] = SECRET
    finally:
        server.stop()
    blob = world.path.read_bytes()
    assert blob.startswith(b"age-encryption.org/") and SECRET.encode() not in blob and b"pve1" not in blob
    assert stat.S_IMODE(world.path.stat().st_mode) == 0o600
    assert (world.load() or {})["apitokens"] == {TOKEN_ID: SECRET}


def test_a_token_added_from_another_thread_is_saved_before_that_thread_goes_on(workspace: Workspace) -> None:
    """`pveum user token add` in the SSH stand-in writes pve.apitokens from its own thread and then
    prints the secret: by then the document must hold the token."""
    world = World.open(workspace).file(DOCUMENT)
    server = start_fakepve(["pve1"], world=world)
    try:
        seen: list[Any] = []

        def pveum() -> None:
            server.pve.apitokens[TOKEN_ID] = SECRET
            seen.append((world.load() or {}).get("apitokens"))

        worker = threading.Thread(target=pveum)
        worker.start()
        worker.join(30)
        assert seen == [{TOKEN_ID: SECRET}]
    finally:
        server.stop()


def test_saved_nodes_keep_their_flag_and_new_spec_nodes_are_added(workspace: Workspace) -> None:
    world = World.open(workspace).file(DOCUMENT)
    first = start_fakepve(["pve1"], world=world, cluster_name="lab")
    assert set(first.pve.storages) == {"local", "local-lvm"}  # a fresh install's: nothing the spec names is added
    first.pve.set_node_offline("pve1")
    first.pve.add_ceph_storage("ceph")  # as `pveceph pool create --add_storages` would
    first.stop()
    second = start_fakepve(["pve1", "pve2"], world=world, cluster_name="renamed")
    try:
        assert second.pve.nodes == {"pve1": {"online": False}, "pve2": {"online": True}}
        assert second.pve.cluster_name == "lab" and "ceph" in second.pve.storages
        assert set((world.load() or {})["storages"]) == {"local", "local-lvm", "ceph"}
    finally:
        second.stop()


def _fetch(url: str) -> bytes:
    """What the hosts download in these tests: any URL answers a (fake) template."""
    return b"a template " + url.encode()


async def _populate(client: ProxmoxClient, storage: str, tmp: Path) -> dict[str, Any]:
    """Through the production client: an ISO upload, a template download, a running VM and a running CT."""
    iso = tmp / ISO
    iso.write_bytes(b"\0" * 4096)
    with iso.open("rb") as fh:
        await asyncio.to_thread(client.api.nodes("pve1").storage(storage).upload.post, content="iso", filename=fh)
    await client.download_url("pve1", storage, url=f"https://example.invalid/{TEMPLATE}", filename=TEMPLATE, content="vztmpl")
    await client.create_vm("pve1", 100, name="cp-1", memory=2048, cores=2, scsi0="local-lvm:8", net0="virtio,bridge=vmbr0")
    await client.start_vm("pve1", 100)
    await client.create_lxc("pve1", 300, ostemplate=f"{storage}:vztmpl/{TEMPLATE}", hostname="infisical", rootfs="local-lvm:4",
                            net0="name=eth0,bridge=vmbr0,ip=dhcp")
    await client.start_lxc("pve1", 300)
    await client.set_lxc_config("pve1", 300, description="kept")  # a PUT without a task: the request hook saves it
    return await _observe(client, storage)


async def _observe(client: ProxmoxClient, storage: str) -> dict[str, Any]:
    guests = sorted((g["vmid"], g["type"], g["name"], g["status"]) for g in await client.guests())
    return {"guests": guests, "vm": await client.vm_config("pve1", 100), "ct": await client.lxc_config("pve1", 300),
            "files": sorted(item["volid"] for item in await client.storage_content("pve1", storage))}


def _expect_populated(seen: dict[str, Any], storage: str) -> None:
    assert seen["guests"] == [(100, "qemu", "cp-1", "running"), (300, "lxc", "infisical", "running")]
    assert seen["vm"]["memory"] == "2048" and seen["vm"]["scsi0"].startswith("local-lvm:vm-100-disk-0")
    assert seen["ct"]["hostname"] == "infisical" and seen["ct"]["description"] == "kept"
    assert {f"{storage}:iso/{ISO}", f"{storage}:vztmpl/{TEMPLATE}"} <= set(seen["files"])


async def test_a_second_sandbox_finds_the_first_ones_world(workspace: Workspace, tmp_path: Path) -> None:
    hosts = SimpleNamespace(pve=None)  # the SSH stand-in, already up
    box = _box(workspace, hosts)
    stop = fakepve.STANDIN.start(box)
    try:
        server: FakePveServer = box[fakepve.SERVER]
        assert hosts.pve is server.pve
        server.pve.add_token(TOKEN_ID, SECRET, privsep=0)  # as `pveum user token add --privsep 0` on a host
        server.pve.fetch_url = _fetch
        first = await _populate(_client(box.connections), box.spec.proxmox.image_storage, tmp_path)
        _expect_populated(first, box.spec.proxmox.image_storage)
    finally:
        stop()

    again = _box(workspace)  # a new run: no SSH stand-in handing over the token this time
    stop = fakepve.STANDIN.start(again)
    try:
        client = _client(again.connections)  # the saved token is accepted
        assert await _observe(client, again.spec.proxmox.image_storage) == first  # same config digests too
        assert again[fakepve.SERVER].creates("qemu") == 0
        await client.stop_vm("pve1", 100)  # and the world goes on from there
        assert await client.vm_status("pve1", 100) == "stopped"
    finally:
        stop()
    assert next(g for g in (World.open(workspace).file(DOCUMENT).load() or {})["vms"] if g["vmid"] == 100)["status"] == "stopped"


def test_a_task_that_ends_after_the_answer_is_saved_before_it_shows_as_stopped(workspace: Workspace) -> None:
    world = World.open(workspace).file(DOCUMENT)
    server = start_fakepve(["pve1"], world=world, time_scale=0.001)
    try:
        server.pve.add_vm(100, "cp-1")
        server.pve.save_now()
        upid = server.call(server.pve._do_start(server.pve.vm(100), "root@pam", {}))
        deadline = time.monotonic() + 30
        while server.pve.tasks[upid]["status"] != "stopped" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.pve.tasks[upid]["exitstatus"] == "OK"
        # No request since the task began: only the task hook can have saved this.
        assert [g["status"] for g in (world.load() or {})["vms"]] == ["running"]
    finally:
        server.stop()


KILLABLE = """
import json, sys
from importlib import resources
from pathlib import Path
import yaml
from tierzero.adapters.connections import Connections
from tierzero.sandbox import fakepve
from tierzero.sandbox.context import SandboxContext, SandboxOptions
from tierzero.sandbox.world import World
from tierzero.spec import Platform
from tierzero.workspace import Workspace

spec = Platform.model_validate(yaml.safe_load(resources.files("tierzero.spec").joinpath("blueprints/oci-free-tier.yaml").read_text()))
ws = Workspace(Path(sys.argv[1]))
box = SandboxContext(spec, ws, Connections(target="sandbox"), ws.root / "sandbox", world=World.open(ws),
                     options=SandboxOptions(pve_time_scale=0.001))
fakepve.STANDIN.start(box)
server = box[fakepve.SERVER]
server.pve.add_token(sys.argv[2], sys.stdin.readline().strip(), privsep=0)
server.pve.fetch_url = lambda url: b"a template " + url.encode()
print(json.dumps({"port": server.pve.port, "cafile": server.cafile}), flush=True)
sys.stdin.read()
"""


def _spawn(ws: Workspace) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    proc = subprocess.Popen([sys.executable, "-c", KILLABLE, str(ws.root), TOKEN_ID], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(SECRET + "\n")
    proc.stdin.flush()
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        proc.wait(30)
        raise AssertionError("the fakepve process did not come up (see its stderr above)")
    return proc, json.loads(line)


async def test_a_killed_sandbox_leaves_its_world_behind(workspace: Workspace, tmp_path: Path) -> None:
    proc, ready = await asyncio.to_thread(_spawn, workspace)
    try:
        conns = Connections(target="sandbox")
        conns.add("proxmox", "pve1", Endpoint("127.0.0.1", ready["port"], scheme="https", verify=ready["cafile"], extra={"poll_interval": 0.01}))
        storage = _spec().proxmox.image_storage
        first = await _populate(_client(conns), storage, tmp_path)
        _expect_populated(first, storage)
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # no stop(), no settle, no last save
        proc.wait(30)
        shutil.rmtree(Path(ready["cafile"]).parent, ignore_errors=True)  # its temp dir, which nothing else removes now
    assert proc.returncode == -signal.SIGKILL

    box = _box(workspace)
    stop = fakepve.STANDIN.start(box)
    try:
        assert await _observe(_client(box.connections), storage) == first
    finally:
        stop()
