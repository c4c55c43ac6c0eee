"""The LXC a service runs in: looked up by vmid first, its OS template fetched through the appliance
API when missing, created unprivileged with nesting (for Docker), given `keyctl` as root over SSH,
started, and its address read back.

Docker in an unprivileged container needs `keyctl` besides `nesting` (pct.conf `features`:
"keyctl ... This is required to use docker inside a container"). Only the real `root@pam` may set
feature flags other than nesting, not its API tokens: 403 `changing feature flags (except nesting)
is only allowed for root@pam`. So the API token creates the container with `nesting=1` (VM.Allocate
suffices) and `pct set <vmid> --features nesting=1,keyctl=1` runs as root on the node before the
first start. Sources: pve-docs 9.1.3 pct.adoc (features); proxmox/pve-container 6.0.18
src/PVE/LXC.pm check_ct_modify_config_perm 1745-1750.

Proxmox calls go through tierzero.adapters.proxmox (retries, UPID task polling, TASK ERROR as
OperationError); commands in the container through the node's SSH client and `pct exec`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import time
from typing import TYPE_CHECKING, Any, Mapping

from tierzero.adapters.protocols import ProxmoxApi
from tierzero.adapters.proxmox import proxmox_client
from tierzero.errors import OperationError, RefusedError
from tierzero.phases.hosts import host_ssh

if TYPE_CHECKING:
    from tierzero.engine.step import StepContext
    from tierzero.spec.services import Infisical

ADDRESS_TIMEOUT = 180.0
POLL_INTERVAL = 1.0


def pve_api(ctx: "StepContext", node: str) -> ProxmoxApi:
    return proxmox_client(ctx, node)


def ostemplate(ctx: "StepContext", svc: "Infisical", template: str | None = None) -> str:
    return f"{ctx.spec.proxmox.image_storage}:vztmpl/{template or svc.template}"


def _build(name: str) -> tuple[int, ...]:
    """debian-12-standard_12.12-1_amd64.tar.zst -> (12, 12, 1): newest build first when sorted."""
    version = name.split("_")[1] if name.count("_") >= 2 else ""
    return tuple(int(x) for x in re.findall(r"\d+", version))


def pick_template(names: list[str], wanted: str) -> str | None:
    """The file `wanted` names: itself, or the newest build of the package it names."""
    if wanted in names:
        return wanted
    builds = [n for n in names if n.split("_")[0] == wanted]
    return max(builds, key=_build) if builds else None


async def ensure_template(ctx: "StepContext", api: ProxmoxApi, svc: "Infisical") -> str:
    node, storage = svc.node, ctx.spec.proxmox.image_storage
    content = await api.call("get", f"nodes/{node}/storage/{storage}/content", content="vztmpl")
    present = [str(item.get("volid", "")).split("vztmpl/", 1)[-1] for item in content or []]
    found = pick_template(present, svc.template)
    if found is not None:
        return ostemplate(ctx, svc, found)
    available = await api.call("get", f"nodes/{node}/aplinfo")
    template = pick_template([str(i.get("template")) for i in available or []], svc.template)
    if template is None:
        close = sorted(i["template"] for i in available or [] if str(i.get("template", "")).split("-")[0] == svc.template.split("-")[0])
        raise RefusedError(f"LXC template {svc.template!r} is neither on {storage} nor offered by the appliance index of {node}",
                           hint="pick one of: " + ", ".join(close[-5:]) if close else "run `pveam update` on the node")
    ctx.log(f"downloading LXC template {template} to {storage} on {node}")
    await api.task("post", f"nodes/{node}/aplinfo", f"download of LXC template {template} to {storage} on {node}",
                   storage=storage, template=template)
    return ostemplate(ctx, svc, template)


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
        # nesting lets Docker run in the container; keyctl (root-only) is set over SSH: set_root_features.
        "features": "nesting=1", "unprivileged": 1, "onboot": 1,
    }
    if not svc.ip.dhcp:
        params["nameserver"] = " ".join(px.nameservers)
    key = ctx.workspace.ssh_public_key
    if key.exists():
        params["ssh-public-keys"] = key.read_text().strip()
    return params


async def ensure_lxc(ctx: "StepContext", svc: "Infisical") -> Mapping[str, Any]:
    api, node, vmid = pve_api(ctx, svc.node), svc.node, svc.vmid
    found = await api.find_guest(vmid=vmid)
    if found is not None:
        if found.get("type") != "lxc" or found.get("node") != node:
            raise RefusedError(f"vmid {vmid} is taken by a {found.get('type')} on {found.get('node')}, not the LXC of {svc.name} on {node}",
                               hint="pick a free vmid for the service in the spec")
        config = await api.lxc_config(node, vmid)
        if config.get("hostname") != svc.name:
            raise RefusedError(f"LXC {vmid} on {node} is {config.get('hostname')!r}, not {svc.name!r}: refusing to adopt it",
                               hint="pick a free vmid for the service in the spec")
        ctx.log(f"LXC {vmid} ({svc.name}) exists on {node}: adopting it")
        created = False
    else:
        template = await ensure_template(ctx, api, svc)
        ctx.log(f"creating LXC {vmid} ({svc.name}) on {node}")
        params = create_params(ctx, svc, template)
        del params["vmid"]
        await api.create_lxc(node, vmid, **params)
        created = True

    await set_root_features(ctx, api, svc)
    if await api.lxc_status(node, vmid) != "running":
        ctx.log(f"starting LXC {vmid}")
        await api.start_lxc(node, vmid)
    address = await read_address(ctx, api, svc)
    return {"node": node, "vmid": vmid, "hostname": svc.name, "address": address, "created": created}


ROOT_FEATURES = "nesting=1,keyctl=1"


async def set_root_features(ctx: "StepContext", api: ProxmoxApi, svc: "Infisical") -> bool:
    """`keyctl` as root with `pct set` on the node (no API token may set it); True if it changed.
    A running container takes it at its next start."""
    config = await api.lxc_config(svc.node, svc.vmid)
    have = {k: v for k, _, v in (p.partition("=") for p in str(config.get("features") or "").split(",") if p)}
    if have.get("keyctl") == "1" and have.get("nesting") == "1":
        return False
    ctx.log(f"LXC {svc.vmid}: features {ROOT_FEATURES} as root on {svc.node} (pct set; an API token may set nesting only)")
    shell = host_ssh(ctx, svc.node)
    sudo = [] if shell.target.user == "root" else ["sudo"]
    await shell.run([*sudo, "pct", "set", str(svc.vmid), "--features", ROOT_FEATURES],
                    hint="the node's SSH user must be root or have sudo for pct")
    return True


async def read_address(ctx: "StepContext", api: ProxmoxApi, svc: "Infisical") -> str:
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
    found = await api.find_guest(vmid=vmid)
    if found is None:
        return {"deleted": False}
    config = await api.lxc_config(str(found.get("node")), vmid) if found.get("type") == "lxc" else {}
    if found.get("node") != node or config.get("hostname") != svc.name:
        raise RefusedError(f"vmid {vmid} is not the LXC of {svc.name} on {node}: not deleting it")
    if await api.lxc_status(node, vmid) == "running":
        await api.stop_lxc(node, vmid)
    await api.delete_lxc(node, vmid)
    ctx.log(f"deleted LXC {vmid} ({svc.name}) on {node}")
    return {"deleted": True}
