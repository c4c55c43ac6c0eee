"""The LXC a service runs in: looked up by vmid first, its OS template fetched through the appliance
API when missing, created unprivileged with nesting (for Docker), started, and its address read back.

Proxmox calls go through tierzero.adapters.proxmox (retries, UPID task polling, TASK ERROR as
OperationError); commands in the container through the node's SSH client and `pct exec`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from typing import TYPE_CHECKING, Any, Mapping, Protocol

from tierzero.adapters.proxmox import proxmox_client
from tierzero.errors import OperationError, RefusedError

if TYPE_CHECKING:
    from tierzero.engine.step import StepContext
    from tierzero.spec.services import Infisical

ADDRESS_TIMEOUT = 180.0
POLL_INTERVAL = 1.0


class PveApi(Protocol):
    """What this module needs of tierzero.adapters.proxmox.ProxmoxClient."""

    async def call(self, method: str, path: str, **params: Any) -> Any: ...

    async def task(self, method: str, path: str, what: str, **params: Any) -> str: ...


def pve_api(ctx: "StepContext", node: str) -> PveApi:
    return proxmox_client(ctx, node)


def host_shell(ctx: "StepContext", node: str) -> Any:
    """The SSH client of a Proxmox node (tierzero.adapters.ssh), for `pct exec` into its containers."""
    from tierzero.adapters.ssh import ssh_client

    spec_node = ctx.spec.proxmox.get_node(node)
    return ssh_client(ctx.connections, node, user=spec_node.ssh.user if spec_node else "root",
                      workspace_root=ctx.workspace.root, on_retry=ctx.retry)


def ostemplate(ctx: "StepContext", svc: "Infisical") -> str:
    return f"{ctx.spec.proxmox.image_storage}:vztmpl/{svc.template}"


async def ensure_template(ctx: "StepContext", api: PveApi, svc: "Infisical") -> str:
    node, storage, volid = svc.node, ctx.spec.proxmox.image_storage, ostemplate(ctx, svc)
    content = await api.call("get", f"nodes/{node}/storage/{storage}/content", content="vztmpl")
    if any(item.get("volid") == volid for item in content or []):
        return volid
    available = await api.call("get", f"nodes/{node}/aplinfo")
    if not any(item.get("template") == svc.template for item in available or []):
        close = sorted(i["template"] for i in available or [] if str(i.get("template", "")).split("-")[0] == svc.template.split("-")[0])
        raise RefusedError(f"LXC template {svc.template!r} is neither on {storage} nor offered by the appliance index of {node}",
                           hint="pick one of: " + ", ".join(close[-5:]) if close else "run `pveam update` on the node")
    ctx.log(f"downloading LXC template {svc.template} to {storage} on {node}")
    await api.task("post", f"nodes/{node}/aplinfo", f"download of LXC template {svc.template} to {storage} on {node}",
                   storage=storage, template=svc.template)
    return volid


def create_params(ctx: "StepContext", svc: "Infisical", template: str) -> dict[str, Any]:
    px = ctx.spec.proxmox
    net = f"name=eth0,bridge={px.bridge}"
    if svc.ip.dhcp:
        net += ",ip=dhcp"
    else:
        net += f",ip={svc.ip},gw={px.gateway}"
    if px.vlan:
        net += f",tag={px.vlan}"
    params: dict[str, Any] = {
        "vmid": svc.vmid, "hostname": svc.name, "ostemplate": template, "cores": svc.cores,
        "memory": int(svc.memory_gb * 1024), "swap": 512, "rootfs": f"{px.storage}:{svc.disk_gb}", "net0": net,
        # nesting lets Docker run in the container; keyctl is what Docker needs in an unprivileged one.
        "features": "nesting=1,keyctl=1", "unprivileged": 1, "onboot": 1,
    }
    if not svc.ip.dhcp:
        params["nameserver"] = " ".join(px.nameservers)
    key = ctx.workspace.ssh_public_key
    if key.exists():
        params["ssh-public-keys"] = key.read_text().strip()
    return params


async def find_guest(api: PveApi, vmid: int) -> dict[str, Any] | None:
    for item in await api.call("get", "cluster/resources", type="vm") or []:
        if int(item.get("vmid", -1)) == vmid:
            return dict(item)
    return None


async def ensure_lxc(ctx: "StepContext", svc: "Infisical") -> Mapping[str, Any]:
    api, node, vmid = pve_api(ctx, svc.node), svc.node, svc.vmid
    found = await find_guest(api, vmid)
    if found is not None:
        if found.get("type") != "lxc" or found.get("node") != node:
            raise RefusedError(f"vmid {vmid} is taken by a {found.get('type')} on {found.get('node')}, not the LXC of {svc.name} on {node}",
                               hint="pick a free vmid for the service in the spec")
        config = await api.call("get", f"nodes/{node}/lxc/{vmid}/config")
        if config.get("hostname") != svc.name:
            raise RefusedError(f"LXC {vmid} on {node} is {config.get('hostname')!r}, not {svc.name!r}: refusing to adopt it",
                               hint="pick a free vmid for the service in the spec")
        ctx.log(f"LXC {vmid} ({svc.name}) exists on {node}: adopting it")
        created = False
    else:
        template = await ensure_template(ctx, api, svc)
        ctx.log(f"creating LXC {vmid} ({svc.name}) on {node}")
        await api.task("post", f"nodes/{node}/lxc", f"create of LXC {vmid} on {node}", **create_params(ctx, svc, template))
        created = True

    status = await api.call("get", f"nodes/{node}/lxc/{vmid}/status/current")
    if status.get("status") != "running":
        ctx.log(f"starting LXC {vmid}")
        await api.task("post", f"nodes/{node}/lxc/{vmid}/status/start", f"start of LXC {vmid} on {node}")
    address = await read_address(ctx, api, svc)
    return {"node": node, "vmid": vmid, "hostname": svc.name, "address": address, "created": created}


async def read_address(ctx: "StepContext", api: PveApi, svc: "Infisical") -> str:
    """eth0's IPv4 address as the container reports it (DHCP may take a moment after start)."""
    deadline = time.monotonic() + ADDRESS_TIMEOUT
    ctx.wait(f"LXC {svc.vmid} to report its eth0 address")
    while True:
        for iface in await api.call("get", f"nodes/{svc.node}/lxc/{svc.vmid}/interfaces") or []:
            if iface.get("name") == "eth0" and iface.get("inet"):
                address = str(ipaddress.ip_interface(iface["inet"]).ip)
                if svc.ip.address is not None and address != str(svc.ip.address):
                    raise RefusedError(f"LXC {svc.vmid} has {address} on eth0, not the spec's {svc.ip}",
                                       hint="the container was changed outside tierzero: fix its net0 or the spec")
                return address
        if time.monotonic() > deadline:
            raise OperationError(f"LXC {svc.vmid} reported no IPv4 address on eth0 within {int(ADDRESS_TIMEOUT)} s",
                                 hint="check the bridge and DHCP on the Proxmox network")
        await asyncio.sleep(POLL_INTERVAL)


async def destroy_lxc(ctx: "StepContext", svc: "Infisical") -> Mapping[str, Any]:
    """Stop and delete the service's container (its Docker volumes go with it); only ours, by hostname."""
    api, node, vmid = pve_api(ctx, svc.node), svc.node, svc.vmid
    found = await find_guest(api, vmid)
    if found is None:
        return {"deleted": False}
    config = await api.call("get", f"nodes/{found.get('node')}/lxc/{vmid}/config") if found.get("type") == "lxc" else {}
    if found.get("node") != node or config.get("hostname") != svc.name:
        raise RefusedError(f"vmid {vmid} is not the LXC of {svc.name} on {node}: not deleting it")
    status = await api.call("get", f"nodes/{node}/lxc/{vmid}/status/current")
    if status.get("status") == "running":
        await api.task("post", f"nodes/{node}/lxc/{vmid}/status/stop", f"stop of LXC {vmid} on {node}")
    await api.task("delete", f"nodes/{node}/lxc/{vmid}", f"delete of LXC {vmid} on {node}", purge=1)
    ctx.log(f"deleted LXC {vmid} ({svc.name}) on {node}")
    return {"deleted": True}
