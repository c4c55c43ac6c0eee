"""Address collisions: every address the spec hands out must be free, and every range must keep
to itself. Each problem names both sides with their paths (the loader adds both positions).

What is checked:
- host addresses (the Proxmox gateway, explicit Proxmox hosts, the QDevice, each cluster's VIP,
  every VM and LXC address) are all distinct;
- a load-balancer pool (MetalLB, or Cilium LB-IPAM with L2 announcements) runs forwards, stays
  off the network and broadcast addresses of the VM network, covers none of those hosts, and
  overlaps no other pool: the pool's owner would hand such an address to a Service and answer
  ARP for it, taking it from the machine that has it (MetalLB docs, "Layer 2 configuration";
  Cilium docs, "LB IPAM");
- the VM network stays out of the OCI VCN and its subnet: the hosts NAT the VM bridge into the
  VCN, and an overlap makes VCN addresses unreachable from the VMs;
- pod and service CIDRs overlap neither each other nor the VM network, the VCN, the Ceph
  network, any host address or nameserver: a pod would route such an address into the cluster;
- the VCN and subnet have the sizes OCI allows (/16 to /30, "VCNs and Subnets", OCI docs), the
  subnet lies inside the VCN, and the service CIDR is at most a /12 (IPv4) or /108 (IPv6), the
  largest kube-apiserver accepts (kubernetes cmd/kube-apiserver/app/options/validation.go).

Single addresses and ranges kept as validated strings in the spec are parsed here with `ipaddress`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Iterator, Union

from tierzero.spec.errors import Path, Problem
from tierzero.spec.models import Platform

IP = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
Net = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

OCI_PREFIX = (16, 30)
SERVICE_CIDR_MAX_HOST_BITS = {4: 20, 6: 20}  # /12 and /108


@dataclass(frozen=True)
class Host:
    path: Path
    ip: IP
    label: str


@dataclass(frozen=True)
class Pool:
    path: Path
    text: str
    first: IP
    last: IP

    def covers(self, ip: IP) -> bool:
        return ip.version == self.first.version and self.first <= ip <= self.last  # type: ignore[operator]

    def overlaps(self, other: "Pool") -> bool:
        return self.first.version == other.first.version and not (self.last < other.first or other.last < self.first)  # type: ignore[operator]


def _err(path: Path, message: str, related: Path | None = None) -> Problem:
    return Problem(path, message, related=related)


def hosts(p: Platform) -> list[Host]:
    """Every single address the spec gives out: the infrastructure's, the VMs', the LXCs', the VIPs'."""
    out: list[Host] = []
    px = p.proxmox if p.has_proxmox else None
    if px is not None:
        out.append(Host(("hypervisors", "proxmox", "gateway"), ipaddress.ip_address(px.gateway), "the Proxmox gateway"))
        for i, n in enumerate(px.nodes):
            if n.address:
                out.append(Host(("hypervisors", "proxmox", "nodes", i, "address"), ipaddress.ip_address(n.address), f"Proxmox host {n.name}"))
    if px is not None and px.qdevice:
        try:
            out.append(Host(("hypervisors", "proxmox", "qdevice", "host"), ipaddress.ip_address(px.qdevice.host), "the QDevice"))
        except ValueError:
            pass  # a micro instance's name
    for ci, c in enumerate(p.clusters):
        for key in ("control_planes", "workers"):
            for ni, n in enumerate(getattr(c, key)):
                if n.ip.address is not None:
                    out.append(Host(("clusters", ci, key, ni, "ip"), n.ip.address, f"node {n.name}"))
    for si, s in enumerate(p.services):
        if s.ip.address is not None:
            out.append(Host(("services", si, "ip"), s.ip.address, f"service {s.name}"))
    # VIPs last: a VIP on a machine's address is reported at the VIP, the address to move.
    out += [Host(("clusters", ci, "vip"), ipaddress.ip_address(c.vip), f"the VIP of cluster {c.name}")
            for ci, c in enumerate(p.clusters) if c.vip]
    return out


def pools(p: Platform) -> Iterator[Pool | Problem]:
    """The load-balancer pools of every cluster, or the problem that makes one unreadable."""
    for ci, c in enumerate(p.clusters):
        lb = c.addons.metallb
        if lb is None or not lb.enabled:
            continue
        for ai, text in enumerate(lb.addresses):
            path = ("clusters", ci, "addons", "metallb", "addresses", ai)
            try:
                first_text, dash, last_text = text.partition("-")
                if dash:
                    first, last = ipaddress.ip_address(first_text.strip()), ipaddress.ip_address(last_text.strip())
                else:
                    net = ipaddress.ip_network(text, strict=False)
                    first, last = net.network_address, net.broadcast_address
            except ValueError:
                continue  # reported by the add-on rules as neither a range nor a CIDR
            if first.version != last.version:
                yield _err(path, f"{text} mixes IPv4 and IPv6; a range runs between two addresses of one family")
            elif first > last:  # type: ignore[operator]
                yield _err(path, f"{text} runs backwards; write the lower address first, like {last}-{first}")
            else:
                yield Pool(path, text, first, last)


def check(p: Platform) -> list[Problem]:
    out: list[Problem] = []
    every = hosts(p)
    out += _distinct(every)
    out += _pools(p, every)
    out += _networks(p, every)
    return out


def _distinct(every: list[Host]) -> list[Problem]:
    seen: dict[IP, Host] = {}
    out = []
    for h in every:
        first = seen.setdefault(h.ip, h)
        if first is not h:
            out.append(_err(h.path, f"{h.ip} is already used by {first.label}; give {h.label} a free address", related=first.path))
    return out


def node_network(p: Platform) -> tuple[Path, Net]:
    """The network the Talos nodes live on: the Proxmox VM network, or the VCN subnet for nodes on A1 instances."""
    if p.has_proxmox:
        return ("hypervisors", "proxmox", "network"), ipaddress.ip_network(p.proxmox.network)
    if p.oci is not None:
        return ("cloud", "oci", "network", "subnet_cidr"), ipaddress.ip_network(p.oci.network.subnet_cidr)
    return ("hypervisors",), ipaddress.ip_network("0.0.0.0/32")


def _pools(p: Platform, every: list[Host]) -> list[Problem]:
    out: list[Problem] = []
    net_path, node_net = node_network(p)
    found: list[Pool] = []
    for item in pools(p):
        if isinstance(item, Problem):
            out.append(item)
            continue
        for special, what in ((node_net.network_address, "network"), (node_net.broadcast_address, "broadcast")):
            if node_net.num_addresses > 2 and item.covers(special):
                out.append(_err(item.path, f"pool {item.text} covers {special}, the {what} address of {node_net}; "
                                           "no Service can use it: keep the pool inside the host range",
                                related=net_path))
        for h in every:
            if item.covers(h.ip):
                out.append(_err(item.path, f"pool {item.text} covers {h.ip}, used by {h.label}: the load balancer would "
                                           "hand it to a Service and answer ARP for it; move the pool past it",
                                related=h.path))
        for other in found:
            if item.overlaps(other):
                out.append(_err(item.path, f"pool {item.text} overlaps pool {other.text}; two pools would hand out "
                                           "the same addresses: make them disjoint", related=other.path))
        found.append(item)
    return out


def _overlap(a: Net, b: Net) -> bool:
    return a.version == b.version and a.overlaps(b)


def _networks(p: Platform, every: list[Host]) -> list[Problem]:
    out: list[Problem] = []
    px = p.proxmox if p.has_proxmox else None
    node_path, node_net = node_network(p)
    ranges: list[tuple[Path, Net, str]] = []
    if px is not None:
        if node_net.is_loopback or node_net.is_multicast or node_net.is_link_local or node_net.is_unspecified:
            out.append(_err(node_path, f"{node_net} cannot be a VM network (loopback, multicast, link-local or unspecified); "
                                       "use a private range like 10.10.0.0/24"))
        ranges.append((node_path, node_net, "the VM network"))
    if p.oci:
        net = p.oci.network
        vcn_path: Path = ("cloud", "oci", "network", "vcn_cidr")
        sub_path: Path = ("cloud", "oci", "network", "subnet_cidr")
        vcn, sub = ipaddress.ip_network(net.vcn_cidr), ipaddress.ip_network(net.subnet_cidr)
        for path, cidr, what in ((vcn_path, vcn, "VCN"), (sub_path, sub, "subnet")):
            if cidr.version != 4 or not OCI_PREFIX[0] <= cidr.prefixlen <= OCI_PREFIX[1]:
                out.append(_err(path, f"an OCI {what} is an IPv4 CIDR from /{OCI_PREFIX[0]} to /{OCI_PREFIX[1]}; {cidr} is not"))
        if sub.version != vcn.version or not sub.subnet_of(vcn):  # type: ignore[arg-type]
            out.append(_err(sub_path, f"subnet {sub} is not inside the VCN {vcn}; pick a subnet of {vcn}", related=vcn_path))
        for path, cidr, what in ((vcn_path, vcn, "the VCN"), (sub_path, sub, "the VCN subnet")):
            if px is not None and _overlap(node_net, cidr):
                out.append(_err(node_path, f"the VM network {node_net} overlaps {what} {cidr}: VMs could not reach the "
                                           "VCN through the hosts' NAT; pick a VM network outside it", related=path))
                break
        ranges += [(vcn_path, vcn, "the VCN"), (sub_path, sub, "the VCN subnet")]
    if px is not None and px.ceph.network:
        ranges.append((("hypervisors", "proxmox", "ceph", "network"), ipaddress.ip_network(px.ceph.network), "the Ceph network"))
    singles = [(h.path, h.ip, h.label) for h in every]
    if px is not None:
        singles += [(("hypervisors", "proxmox", "nameservers", i), ipaddress.ip_address(a), f"nameserver {a}") for i, a in enumerate(px.nameservers)]
    for ci, c in enumerate(p.clusters):
        base = ("clusters", ci, "network")
        pod_path, svc_path = base + ("pod_cidr",), base + ("service_cidr",)
        pod, svc = ipaddress.ip_network(c.network.pod_cidr), ipaddress.ip_network(c.network.service_cidr)
        limit = SERVICE_CIDR_MAX_HOST_BITS[svc.version]
        if svc.max_prefixlen - svc.prefixlen > limit:
            out.append(_err(svc_path, f"service CIDR {svc} is larger than kube-apiserver accepts; use /{svc.max_prefixlen - limit} "
                                      "or smaller, like 10.96.0.0/12"))
        if _overlap(pod, svc):
            out.append(_err(svc_path, f"service CIDR {svc} overlaps the pod CIDR {pod}; pick disjoint ranges", related=pod_path))
        for path, cidr, name in ((pod_path, pod, "pod"), (svc_path, svc, "service")):
            for other_path, other, what in ranges:
                if _overlap(cidr, other):
                    out.append(_err(path, f"{name} CIDR {cidr} overlaps {what} ({other}): traffic for it would be routed "
                                          "into the cluster; pick a range that does not", related=other_path))
            in_range = [(sp, ip, label) for sp, ip, label in singles if ip.version == cidr.version and ip in cidr]
            if in_range and not any(_overlap(cidr, other) for _, other, _ in ranges):
                sp, ip, label = in_range[0]
                out.append(_err(path, f"{name} CIDR {cidr} holds {ip} ({label}): pods could not reach it; "
                                      "pick a range that does not", related=sp))
    return out
