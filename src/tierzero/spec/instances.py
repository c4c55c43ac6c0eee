"""Rules for Talos nodes that run directly on OCI A1 instances (clusters[].*[].instance: the oci-talos design).

Facts used, with their sources:
- OCI reserves the first two addresses and the last address of every subnet (OCI docs, "VCNs and Subnets":
  https://docs.oracle.com/iaas/Content/Network/Tasks/managingVCNs_topic-Overview_of_VCNs_and_Subnets.htm).
- A Talos VIP is claimed by gratuitous ARP, so it needs the control planes on one layer-2 segment (Talos docs,
  "Virtual (shared) IP"); an OCI VCN forwards at layer 3 and only delivers to addresses assigned to a VNIC, so
  the VIP would never answer there. The network load balancer fronts the Kubernetes API instead.
- Ampere A1 is arm64 (VM.Standard.A1.Flex), so the Image Factory's `oracle-arm64` image is the one to boot.
"""

from __future__ import annotations

import ipaddress

from tierzero.spec.errors import Path, Problem
from tierzero.spec.models import Platform


def _err(path: Path, message: str, related: Path | None = None) -> Problem:
    return Problem(path, message, related=related)


def check_talos_instances(p: Platform) -> list[Problem]:
    """Every problem with nodes on A1 instances, and with Proxmox-only parts in a spec that has no Proxmox hosts."""
    out: list[Problem] = []
    a1 = {i.name for i in p.oci.a1_instances} if p.oci else set()
    pve_instances = {n.instance: i for i, n in enumerate(p.proxmox.nodes) if n.instance} if p.has_proxmox else {}
    subnet = ipaddress.ip_network(p.oci.network.subnet_cidr) if p.oci else None
    for ci, c in enumerate(p.clusters):
        base: Path = ("clusters", ci)
        kinds = {bool(n.instance) for _, n in c.nodes()}
        if len(kinds) > 1:
            out.append(_err(base, f"cluster {c.name} mixes Proxmox VMs (`node`) and A1 instances (`instance`); "
                                  "put every node of one cluster on the same kind of host"))
        for key in ("control_planes", "workers"):
            for ni, n in enumerate(getattr(c, key)):
                path = base + (key, ni)
                if n.node is not None and not p.has_proxmox:
                    out.append(_err(path + ("node",), f"node {n.name} runs on Proxmox host {n.node!r} but the spec has no "
                                                      "hypervisors.proxmox; add it, or run the node on an A1 instance with `instance:`"))
                if n.instance is None:
                    continue
                if p.oci is None:
                    out.append(_err(path + ("instance",), f"node {n.name} runs on A1 instance {n.instance!r} but the spec has "
                                                          "no cloud.oci; add it or use a Proxmox host with `node:`"))
                    continue
                if n.instance not in a1:
                    hint = f"one of: {', '.join(sorted(a1))}" if a1 else "declare it under cloud.oci.a1_instances"
                    out.append(_err(path + ("instance",), f"no A1 instance named {n.instance!r}; expected {hint}"))
                elif n.instance in pve_instances:
                    out.append(_err(path + ("instance",), f"A1 instance {n.instance!r} is already a Proxmox host; one "
                                                          "instance runs either Proxmox VE or Talos, not both",
                                    related=("hypervisors", "proxmox", "nodes", pve_instances[n.instance], "instance")))
                address = n.ip.address
                if subnet is not None and address is not None and address in subnet and subnet.num_addresses > 4:
                    reserved = {subnet.network_address, subnet.network_address + 1, subnet.broadcast_address}
                    if address in reserved:
                        out.append(_err(path + ("ip",), f"{address} is reserved by OCI in subnet {subnet} (the first two "
                                                        "addresses and the last one); use another host address"))
        if c.on_instances:
            if c.arch != "arm64":
                out.append(_err(base + ("arch",), f"cluster {c.name} runs on Ampere A1 instances, which are arm64; set arch: arm64"))
            if c.vip:
                out.append(_err(base + ("vip",), "a Talos VIP needs layer-2 ARP, which an OCI VCN does not carry; remove `vip` "
                                                 "and use a control plane's address as the endpoint (the network load balancer "
                                                 "fronts the Kubernetes API from outside)"))
    if not p.has_proxmox:
        for si, s in enumerate(p.services):
            out.append(_err(("services", si), f"service {s.name} runs as a Proxmox LXC but the spec has no hypervisors.proxmox; "
                                              "remove it or add Proxmox hosts"))
        if not p.clusters:
            out.append(_err(("hypervisors",), "the spec has neither hypervisors.proxmox nor a cluster on A1 instances; add one"))
    return out
