"""The stock Proxmox VE world the stand-in tests share: two fresh 9.1 hosts (SSH stand-ins), the
sandbox's Proxmox API in front of them, the Image Factory stand-in, and helpers to call them the
way the production clients do."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from proxmoxer import ProxmoxAPI

from tierzero.adapters.connections import Connections, RetryPolicies
from tierzero.adapters.proxmox import ApiError, ProxmoxClient, TaskFailed, connect
from tierzero.adapters.retry import Policy
from tierzero.adapters.ssh import ssh_client
from tierzero.sandbox.fakepve import FakePveServer, start_fakepve
from tierzero.sandbox.guests import link
from tierzero.sandbox.image_factory import ImageFactoryServer, start_image_factory
from tierzero.sandbox.pve_hosts import PveHosts, start_pve_hosts, tailscale_repository
from tierzero.workspace.keys import create_ssh_keypair
from tierzero.workspace.layout import Workspace

FAST = Policy(base=0.01, cap=0.05, deadline=1.0)
TIERZERO = "Datastore.Allocate,Datastore.AllocateSpace,Datastore.AllocateTemplate,SDN.Use,Sys.AccessNetwork,Sys.Audit,VM.Allocate,VM.Audit," \
           "VM.Config.CPU,VM.Config.Disk,VM.Config.HWType,VM.Config.Memory,VM.Config.Network,VM.Config.Options,VM.PowerMgmt"


@dataclass
class Stock:
    server: FakePveServer
    hosts: PveHosts
    factory: ImageFactoryServer
    conns: Connections

    @property
    def pve(self) -> Any:
        return self.server.pve

    async def ssh(self, host: str, command: str | list[str], check: bool = True, input: str | None = None) -> Any:
        return await ssh_client(self.conns, host).run(command, check=check, input=input)

    async def token(self, name: str, *, privsep: int = 1, role: str | None = None, privs: str = TIERZERO, path: str = "/") -> ProxmoxClient:
        """A token made with `pveum` on pve1 (and, with `role`, that role granted on `path`)."""
        import json

        out = await self.ssh("pve1", ["pveum", "user", "token", "add", "root@pam", name, "--privsep", str(privsep), "--output-format", "json"])
        secret = json.loads(out.stdout)["value"]
        if role:
            await self.ssh("pve1", ["pveum", "role", "add", role, "--privs", privs])
            await self.ssh("pve1", ["pveum", "acl", "modify", path, "--tokens", f"root@pam!{name}", "--roles", role])
        client = connect(self.conns, "pve1", f"root@pam!{name}", secret)
        client.policy = FAST
        return client

    def root(self) -> ProxmoxClient:
        """The root@pam login itself (a ticket, as the web UI has)."""
        api = ProxmoxAPI("127.0.0.1", port=self.pve.port, user="root@pam", password="sandbox-only", verify_ssl=self.server.cafile, service="PVE")
        return ProxmoxClient(api, label="root@pam", policy=FAST, poll_interval=0.01)

    def image_url(self, extensions: list[str] | None = None, path: str = "nocloud-amd64.qcow2", version: str = "v1.13.9") -> str:
        body = "customization: {}\n" if not extensions else "customization:\n    systemExtensions:\n        officialExtensions:\n" + \
            "".join(f"            - {e}\n" for e in extensions)
        sid = self.factory.factory.create(body.encode())[1]["id"]
        return f"{self.factory.url}/image/{sid}/{version}/{path}"


@pytest.fixture(name="stock")
def stock_fixture(tmp_path) -> Iterator[Stock]:
    ws = Workspace(tmp_path / ".tierzero")
    ws.root.mkdir()
    create_ssh_keypair(ws)
    hosts = start_pve_hosts([("pve1", "192.168.10.11"), ("pve2", "192.168.10.12")], ws.ssh_public_key, repositories=[tailscale_repository()])
    server = start_fakepve(["pve1", "pve2"])
    factory = start_image_factory()
    try:
        link(server, hosts)
        conns = Connections(target="sandbox", ssh_key=ws.ssh_key, known_hosts=ws.root / "known_hosts")
        conns.retry = RetryPolicies(default=FAST, ssh=FAST)
        hosts.connections(conns)
        server.connections(conns)
        yield Stock(server, hosts, factory, conns)
    finally:
        factory.stop()
        server.stop()
        hosts.stop()


async def refused(client: ProxmoxClient, method: str, path: str, **params: Any) -> ApiError:
    with pytest.raises(ApiError) as err:
        await asyncio.to_thread(client._raw, method, path, params)
    return err.value


async def run_task(client: ProxmoxClient, method: str, path: str, **params: Any) -> str:
    """The task's exit status: OK, or its TASK ERROR message."""
    upid = await asyncio.to_thread(client._raw, method, path, params)
    try:
        await client.wait_task(upid)
    except TaskFailed as failed:
        assert failed.log_tail[-1] == f"TASK ERROR: {failed.exitstatus}"
        return failed.exitstatus
    return "OK"
