"""The VM network across hosts on cloud instances (steps `hypervisors/vm-network` and
`hypervisors/vm-gateway`): OCI instances share no layer 2, so the VMs' network is a Proxmox SDN
VXLAN zone between the hosts' VCN addresses, created through the API with tierzero's token, with a
vnet named as `hypervisors.proxmox.bridge` (`vmbr1` in the starter). The first host carries the
gateway address and masquerades the VM network to the VCN.

Sources: pve-docs 9.1.3 pvesdn.adoc "VXLAN Zones" (peers, UDP 4789, MTU 50 bytes under the
uplink's), proxmox/pve-network 1.2.3 src/PVE/API2/Network/SDN.pm reload (PUT /cluster/sdn applies
the pending configuration on every node), pve-docs pve-network.adoc "Masquerading (NAT) with
iptables" (the gateway stanza). The gateway stanza adds to the vnet's own, which SDN writes to
/etc/network/interfaces.d/sdn: ifupdown2 merges stanzas of one interface (not verified here
against a real host)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

from tierzero.adapters.proxmox import proxmox_client
from tierzero.engine.step import Step, StepContext
from tierzero.errors import OperationError
from tierzero.phases.hosts import host_address, host_ssh
from tierzero.render.proxmox_hosts import SDN_ZONE, VXLAN_MTU, VXLAN_VNI, vm_network_wanted
from tierzero.render.remote_files import write_file_script

if TYPE_CHECKING:
    from tierzero.spec.models import Platform

GATEWAY_FILE = "/etc/network/interfaces.d/tierzero-gateway"


@dataclass(frozen=True)
class NetworkInputs:
    first: str
    nodes: tuple[str, ...]
    bridge: str
    network: str
    gateway: str


def _inputs(ctx: StepContext) -> NetworkInputs:
    px = ctx.spec.proxmox
    return NetworkInputs(px.nodes[0].name, tuple(n.name for n in px.nodes), px.bridge, str(px.network), str(px.gateway))


async def _sdn(ctx: StepContext, inputs: NetworkInputs) -> Mapping[str, Any]:
    api = proxmox_client(ctx, inputs.first)
    peers = ",".join(host_address(ctx, n) for n in inputs.nodes)
    changed: list[str] = []
    zones = {z.get("zone"): z for z in await api.call("get", "cluster/sdn/zones")}
    zone = zones.get(SDN_ZONE)
    if zone is None:
        await api.call("post", "cluster/sdn/zones", type="vxlan", zone=SDN_ZONE, peers=peers, mtu=VXLAN_MTU, nodes=",".join(inputs.nodes))
        changed.append(f"zone {SDN_ZONE}")
    elif zone.get("type") != "vxlan":
        raise OperationError(f"an SDN zone {SDN_ZONE!r} of type {zone.get('type')} exists; tierzero's VM network needs its own VXLAN zone",
                             hint="remove or rename that zone (Datacenter > SDN > Zones), then run again")
    vnets = {v.get("vnet"): v for v in await api.call("get", "cluster/sdn/vnets")}
    vnet = vnets.get(inputs.bridge)
    if vnet is None:
        await api.call("post", "cluster/sdn/vnets", vnet=inputs.bridge, zone=SDN_ZONE, tag=VXLAN_VNI)
        changed.append(f"vnet {inputs.bridge}")
    elif vnet.get("zone") != SDN_ZONE:
        raise OperationError(f"the vnet {inputs.bridge!r} belongs to zone {vnet.get('zone')!r}, not tierzero's {SDN_ZONE!r}",
                             hint="set hypervisors.proxmox.bridge to another name, or remove that vnet")
    missing = []
    for node in inputs.nodes:
        bridges = {i.get("iface") for i in await api.call("get", f"nodes/{node}/network", type="any_bridge")}
        if inputs.bridge not in bridges:
            missing.append(node)
    if changed or missing:
        ctx.wait("the SDN configuration applied on every node")
        upid = await api.call("put", "cluster/sdn")
        await api.wait_task(str(upid))
        changed.append("applied")
    return {"zone": SDN_ZONE, "vnet": inputs.bridge, "peers": peers, "mtu": VXLAN_MTU, "vni": VXLAN_VNI, "changed": changed}


def gateway_stanza(bridge: str, network: str, gateway: str, uplink: str) -> str:
    """The gateway address on the vnet and the masquerade of the VM network out of `uplink`."""
    prefix = ipaddress.ip_network(network).prefixlen
    rule = f"POSTROUTING -s '{network}' -o {uplink} -j MASQUERADE"
    return (f"# tierzero: the gateway of the VM network {network} and its NAT to the VCN\n"
            f"iface {bridge} inet static\n\taddress {gateway}/{prefix}\n"
            "\tpost-up echo 1 > /proc/sys/net/ipv4/ip_forward\n"
            f"\tpost-up iptables -t nat -A {rule}\n\tpost-down iptables -t nat -D {rule}\n")


async def _gateway(ctx: StepContext, inputs: NetworkInputs) -> Mapping[str, Any]:
    ssh = host_ssh(ctx, inputs.first)
    route = (await ssh.run(["ip", "-o", "route", "show", "default"])).stdout.split()
    if "dev" not in route:
        raise OperationError(f"{inputs.first} has no default route", hint="check the instance's network (`ip route`)")
    uplink = route[route.index("dev") + 1]
    stanza = gateway_stanza(inputs.bridge, inputs.network, inputs.gateway, uplink)
    current = await ssh.run(["cat", GATEWAY_FILE], check=False)
    if current.ok and current.stdout == stanza:
        return {"host": inputs.first, "uplink": uplink, "changed": False}
    await ssh.run(write_file_script(GATEWAY_FILE, "0644"), input=stanza)
    await ssh.run(["ifreload", "-a"], hint=f"check {GATEWAY_FILE} and the SDN configuration (/etc/network/interfaces.d/sdn)")
    return {"host": inputs.first, "uplink": uplink, "changed": True}


def network_steps(spec: Platform, after: str) -> list[Step[Any]]:
    """The zone, vnet and gateway when the hosts are cloud instances; none for hosts you own."""
    if not vm_network_wanted(spec):
        return []
    px = spec.proxmox
    return [
        Step("hypervisors/vm-network", "hypervisors", f"VM network {px.bridge}: SDN VXLAN zone {SDN_ZONE} between the hosts (API)",
             _sdn, inputs=_inputs, needs=(after,), real_only=True),
        Step("hypervisors/vm-gateway", "hypervisors", f"gateway {px.gateway} and NAT of {px.network} on {px.nodes[0].name}",
             _gateway, inputs=_inputs, needs=("hypervisors/vm-network",), real_only=True),
    ]
