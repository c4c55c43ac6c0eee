"""The service LXC against the sandbox's Proxmox (fakepve as a fresh install, with the stand-in
hosts for `pct set` as root) through tierzero.adapters.proxmox, the production path; and an
in-memory PVE for the template-choice paths."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

import pytest

from tierzero.adapters.connections import Connections
from tierzero.adapters.proxmox import TOKEN_SECRET_NAME, ProxmoxClient
from tierzero.engine.step import StepContext
from tierzero.errors import OperationError, RefusedError
from tierzero.phases import services as phase
from tierzero.phases import services_lxc
from tierzero.adapters.proxmox_privileges import ROLE_NAME, ROLE_PRIVILEGES
from tierzero.sandbox.fakepve import start_for_spec
from tierzero.sandbox.guests import link
from tierzero.sandbox.pve_hosts import hosts_for_spec, start_pve_hosts
from tierzero.workspace.keys import create_ssh_keypair

TEMPLATE = "debian-12-standard_12.12-1_amd64.tar.zst"  # what the stock appliance index offers for debian-12-standard
TOKEN = "root@pam!tierzero"


def grant_tierzero(hosts) -> None:
    """What the hypervisors phase leaves on the hosts: its token (privsep 1), role and ACL."""
    c = hosts.cluster
    c.tokens[TOKEN], c.token_privsep[TOKEN] = "sandbox-token", 1
    c.roles[ROLE_NAME] = list(ROLE_PRIVILEGES)
    c.acl = [{"path": "/", "type": "token", "ugid": TOKEN, "roleid": ROLE_NAME, "propagate": 1}]
    hosts.sync_access()


def _ctx(spec, workspace, conns, secrets) -> StepContext:
    return StepContext(spec=spec, workspace=workspace, target="sandbox", connections=conns, secrets=secrets,
                       outputs={}, step_id="services/lxc/infisical")


@pytest.fixture
def hosts(spec, workspace):
    workspace.ssh_public_key.unlink()
    create_ssh_keypair(workspace)
    nodes, witnesses = hosts_for_spec(spec)
    started = start_pve_hosts(nodes, workspace.ssh_public_key, witnesses=witnesses)
    yield started
    started.stop()


@pytest.fixture
def pve_server(spec, hosts):
    server = start_for_spec(spec)
    try:
        link(server, hosts)
        grant_tierzero(hosts)
        server.pve.storages["local"]["content"] += ",vztmpl" if "vztmpl" not in server.pve.storages["local"]["content"] else ""
        yield server
    finally:
        server.stop()


@pytest.fixture
def pve(pve_server, hosts, spec, workspace, memory_secrets):
    memory_secrets.put(TOKEN_SECRET_NAME, "sandbox-token")
    conns = Connections(target="sandbox", ssh_key=workspace.ssh_key, known_hosts=workspace.root / "known_hosts")
    hosts.connections(conns)
    return pve_server.pve, _ctx(spec, workspace, pve_server.connections(conns), memory_secrets)


async def test_whole_phase_against_fakepve_and_the_standins(pve_server, harness, standin):
    harness.secrets.put(TOKEN_SECRET_NAME, "sandbox-token")
    pve_server.connections(harness.connections)
    harness.shell.on_set = lambda argv: pve_server.pve.ct(int(argv[2])).config.update(features=argv[4])
    steps = phase.steps(harness.spec)
    await harness.run_all(steps)
    assert harness.outputs[steps[0].id]["address"] == "192.168.10.30"
    assert harness.outputs[steps[2].id]["result"] == "bootstrapped"
    await harness.run_all(steps)  # and again: nothing new anywhere
    assert pve_server.creates("lxc") == 1
    assert harness.outputs[steps[2].id]["result"] == "adopted"
    assert sum(len(v) for v in standin.state.client_secrets.values()) == 1


def _creates(fake) -> list[dict[str, Any]]:
    return [{k: v[0] for k, v in parse_qs(body.decode()).items()} for method, path, body in fake.requests
            if method == "POST" and path.endswith("/nodes/pve3/lxc")]


async def test_lxc_created_started_and_adopted_on_rerun(pve, spec, hosts):
    fake, ctx = pve
    svc = spec.infisical_services()[0]
    first = await services_lxc.ensure_lxc(ctx, svc)
    assert first == {"node": "pve3", "vmid": 300, "hostname": "infisical", "address": "192.168.10.30", "created": True}
    (params,) = _creates(fake)
    # The token may set nesting only; keyctl (Docker needs it) is set as root with `pct set` on the node.
    assert params["unprivileged"] == "1" and params["features"] == "nesting=1"
    assert set(fake.ct(300).config["features"].split(",")) == {"nesting=1", "keyctl=1"}
    assert params["rootfs"] == "local-lvm:16" and params["memory"] == "2048" and params["cores"] == "2"
    assert params["net0"] == "name=eth0,bridge=vmbr0,ip=192.168.10.30/24,gw=192.168.10.1"
    assert params["ostemplate"] == "local:vztmpl/" + TEMPLATE
    assert params["ssh-public-keys"].startswith("ssh-ed25519 ")
    ct = fake.ct(300)
    assert ct.status == "running" and ct.config["hostname"] == "infisical"

    assert [c for h, c in hosts.commands if "pct set" in c] == [("pct set 300 --features nesting=1,keyctl=1")]

    second = await services_lxc.ensure_lxc(ctx, svc)
    assert second["created"] is False and second["address"] == "192.168.10.30"
    assert len(_creates(fake)) == 1  # looked up first: never a second create
    assert len([c for h, c in hosts.commands if "pct set" in c]) == 1  # keyctl is there: not set again


async def test_stopped_container_is_started_not_recreated(pve, spec):
    fake, ctx = pve
    svc = spec.infisical_services()[0]
    await services_lxc.ensure_lxc(ctx, svc)
    fake.ct(300).status = "stopped"
    out = await services_lxc.ensure_lxc(ctx, svc)
    assert out["created"] is False and fake.ct(300).status == "running" and len(_creates(fake)) == 1


async def test_vmid_taken_by_a_vm_is_refused(pve, spec):
    fake, ctx = pve
    fake.add_vm(300, "someone-else", node="pve3")
    with pytest.raises(RefusedError, match="vmid 300 is taken by a qemu"):
        await services_lxc.ensure_lxc(ctx, spec.infisical_services()[0])
    assert _creates(fake) == []


async def test_vmid_taken_by_another_container_is_refused(pve, spec):
    fake, ctx = pve
    fake.add_ct(300, "other", node="pve3", config={"hostname": "other"})
    with pytest.raises(RefusedError, match="refusing to adopt"):
        await services_lxc.ensure_lxc(ctx, spec.infisical_services()[0])


async def test_task_error_is_a_clear_failure(pve, spec):
    fake, ctx = pve
    fake.fail("POST", "/nodes/pve3/lxc", error="no_lock_found_trying_remove")
    with pytest.raises(OperationError) as err:
        await services_lxc.ensure_lxc(ctx, spec.infisical_services()[0])
    text = "\n".join(err.value.lines())
    assert "create CT 300 on pve3 failed" in text and "no lock found" in text


class MemoryPve:
    """Just enough PVE for the template path: storage content, the appliance index, tasks."""

    def __init__(self, *, offered: list[str]) -> None:
        self.volumes: list[str] = []
        self.offered = offered
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.cts: dict[int, dict[str, Any]] = {}

    async def call(self, method: str, path: str, **params: Any) -> Any:
        assert method == "get", (method, path)
        self.calls.append(("GET", path, params))
        if path == "cluster/resources":
            return [{"vmid": v, "type": "lxc", "node": "pve3"} for v in self.cts]
        if path.endswith("/content"):
            return [{"volid": v, "content": "vztmpl"} for v in self.volumes]
        if path.endswith("/aplinfo"):
            return [{"template": t, "section": "system"} for t in self.offered]
        if path.endswith("/status/current"):
            return {"status": self.cts[300]["status"]}
        if path.endswith("/interfaces"):
            return [{"name": "eth0", "inet": "192.168.10.30/24"}]
        if path.endswith("/config"):
            return {"hostname": "infisical", "features": "nesting=1,keyctl=1"}
        raise AssertionError(path)

    async def task(self, method: str, path: str, what: str, **params: Any) -> str:
        assert method == "post", (method, path)
        self.calls.append(("POST", path, params))
        if path.endswith("/aplinfo"):
            self.volumes.append(f"{params['storage']}:vztmpl/{params['template']}")
        elif path.endswith("/lxc"):
            self.cts[params["vmid"]] = {"status": "stopped"}
        elif path.endswith("/status/start"):
            self.cts[300]["status"] = "running"
        else:
            raise AssertionError(path)
        return "UPID:pve3:00000001:00000002:00000003:task:300:root@pam:"

    # The client's own path-building methods, over this fake's call/task.
    guests = ProxmoxClient.guests
    find_guest = ProxmoxClient.find_guest
    create_lxc = ProxmoxClient.create_lxc
    lxc_config = ProxmoxClient.lxc_config
    lxc_status = ProxmoxClient.lxc_status
    start_lxc = ProxmoxClient.start_lxc


@pytest.fixture
def memory_pve(monkeypatch):
    def use(api: MemoryPve) -> None:
        monkeypatch.setattr(services_lxc, "proxmox_client", lambda ctx, node: api)
    return use


def _memory_ctx(spec, workspace, api: MemoryPve, use) -> StepContext:
    use(api)
    return _ctx(spec, workspace, Connections(target="sandbox"), None)


async def test_missing_template_is_downloaded_through_the_appliance_api(spec, workspace, memory_pve):
    api = MemoryPve(offered=["debian-11-standard_11.7-1_amd64.tar.zst", TEMPLATE])
    out = await services_lxc.ensure_lxc(_memory_ctx(spec, workspace, api, memory_pve), spec.infisical_services()[0])
    assert out["created"] is True
    posts = [(p, params) for m, p, params in api.calls if m == "POST"]
    assert posts[0] == ("nodes/pve3/aplinfo", {"storage": "local", "template": TEMPLATE})
    assert posts[1][0] == "nodes/pve3/lxc"
    assert ("GET", "nodes/pve3/storage/local/content", {"content": "vztmpl"}) in api.calls


async def test_a_pinned_template_the_index_no_longer_offers_is_refused_with_choices(spec, workspace, memory_pve):
    api = MemoryPve(offered=["debian-12-standard_12.12-1_amd64.tar.zst"])
    pinned = spec.infisical_services()[0].model_copy(update={"template": "debian-12-standard_12.7-1_amd64.tar.zst"})
    with pytest.raises(RefusedError) as err:
        await services_lxc.ensure_lxc(_memory_ctx(spec, workspace, api, memory_pve), pinned)
    assert "debian-12-standard_12.12-1_amd64.tar.zst" in "\n".join(err.value.lines())


async def test_a_package_name_takes_the_newest_build_the_index_offers(spec, workspace, memory_pve):
    api = MemoryPve(offered=["debian-12-standard_12.2-1_amd64.tar.zst", "debian-12-standard_12.12-1_amd64.tar.zst",
                             "debian-13-standard_13.1-2_amd64.tar.zst"])
    await services_lxc.ensure_lxc(_memory_ctx(spec, workspace, api, memory_pve), spec.infisical_services()[0])
    posts = [(p, params) for m, p, params in api.calls if m == "POST"]
    assert posts[0] == ("nodes/pve3/aplinfo", {"storage": "local", "template": "debian-12-standard_12.12-1_amd64.tar.zst"})


async def test_lxc_step_output(spec, workspace, memory_pve):
    api = MemoryPve(offered=[TEMPLATE])
    step = phase.steps(spec)[0]
    ctx = _memory_ctx(spec, workspace, api, memory_pve)
    out = await step.run(ctx, step.inputs(ctx))
    assert out["address"] == "192.168.10.30" and out["vmid"] == 300


async def test_destroy_deletes_only_our_container(pve, spec):
    fake, ctx = pve
    step = phase.steps(spec)[0]
    assert (await step.destroy(ctx)) == {"deleted": False}
    await step.run(ctx, step.inputs(ctx))
    assert (await step.destroy(ctx)) == {"deleted": True}
    assert fake.ct(300) is None
    fake.add_ct(300, "other", node="pve3", config={"hostname": "other"})
    with pytest.raises(RefusedError, match="not deleting"):
        await step.destroy(ctx)
