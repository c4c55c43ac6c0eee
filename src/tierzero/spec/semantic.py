"""Rules beyond types: uniqueness, address plans, references, versions and fit."""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from functools import lru_cache
from importlib import resources
from typing import Any, Iterable, Iterator
from urllib.parse import urlparse

from tierzero.spec import addressing
from tierzero.spec.errors import Path, Problem
from tierzero.spec.clusters import Cluster, Node
from tierzero.spec.models import Platform


def _err(path: Path, message: str) -> Problem:
    return Problem(path, message)


def _warn(path: Path, message: str) -> Problem:
    return Problem(path, message, severity="warning")


@lru_cache(maxsize=1)
def supported_versions() -> dict[str, dict[str, str]]:
    import yaml

    text = resources.files("tierzero.spec").joinpath("data/versions.yaml").read_text()
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when PyYAML has it: the same data, several times faster
    versions: dict[str, dict[str, str]] = yaml.load(text, Loader=loader)["talos"]
    return versions


def check(p: Platform) -> list[Problem]:
    out: list[Problem] = []
    from tierzero.spec.instances import check_talos_instances

    for rule in (_unique, _addresses, addressing.check, _references, check_talos_instances, _versions, _fit, _quorum, _addons, _gitops_paths, _backups):
        out.extend(rule(p))
    return out


def _duplicates(items: Iterable[tuple[Path, str]], what: str) -> list[Problem]:
    seen: dict[str, Path] = {}
    out = []
    for path, value in items:
        if value in seen:
            out.append(Problem(path, f"{what} {value!r} is already used; {_plural(what)} must be unique", related=seen[value]))
        else:
            seen[value] = path
    return out


def _plural(noun: str) -> str:
    """'MAC address' -> 'MAC addresses', 'VMID' -> 'VMIDs'."""
    return noun + ("es" if noun.endswith(("s", "x", "sh", "ch")) else "s")


def _vm_nodes(p: Platform) -> Iterator[tuple[Path, Cluster, Node]]:
    for ci, c in enumerate(p.clusters):
        yield from _vm_nodes_of(c, ci)


def _unique(p: Platform) -> list[Problem]:
    out: list[Problem] = []
    if p.oci:
        inst = [(("cloud", "oci", "a1_instances", i, "name"), x.name) for i, x in enumerate(p.oci.a1_instances)]
        inst += [(("cloud", "oci", "micro_instances", i, "name"), x.name) for i, x in enumerate(p.oci.micro_instances)]
        out += _duplicates(inst, "instance name")
    hosts = p.proxmox.nodes if p.has_proxmox else []
    out += _duplicates([(("hypervisors", "proxmox", "nodes", i, "name"), n.name) for i, n in enumerate(hosts)], "Proxmox node name")
    refs: list[tuple[Path, str]] = [(("hypervisors", "proxmox", "nodes", i, "instance"), n.instance) for i, n in enumerate(hosts) if n.instance]
    refs += [(path + ("instance",), n.instance) for path, _, n in _vm_nodes(p) if n.instance]
    out += _duplicates(refs, "cloud instance reference")
    out += _duplicates([(("clusters", i, "name"), c.name) for i, c in enumerate(p.clusters)], "cluster name")
    vms = list(_vm_nodes(p))
    names = [(path + ("name",), n.name) for path, _, n in vms] + [(("services", i, "name"), s.name) for i, s in enumerate(p.services)]
    out += _duplicates(names, "VM/LXC name")
    out += _duplicates([(path + ("mac",), n.mac) for path, _, n in vms if n.mac], "MAC address")
    vmids = [(path + ("vmid",), str(n.vmid)) for path, _, n in vms if n.vmid is not None]
    vmids += [(("services", i, "vmid"), str(s.vmid)) for i, s in enumerate(p.services)]
    out += _duplicates(vmids, "VMID")
    return out  # addresses: tierzero.spec.addressing


def _host_in(path: Path, iface: str, net: ipaddress.IPv4Network | ipaddress.IPv6Network, what: str) -> list[Problem]:
    addr = ipaddress.ip_interface(iface) if "/" in iface else None
    ip = addr.ip if addr else ipaddress.ip_address(iface)
    if ip not in net:
        return [_err(path, f"{what} {ip} is outside the network {net}; use an address inside it")]
    if net.num_addresses > 2 and ip in (net.network_address, net.broadcast_address):
        kind = "network" if ip == net.network_address else "broadcast"
        return [_err(path, f"{what} {ip} is the {kind} address of {net}; use a host address")]
    if addr and addr.network.prefixlen != net.prefixlen:
        return [_err(path, f"{what} has prefix /{addr.network.prefixlen} but the network {net} is /{net.prefixlen}; use /{net.prefixlen}")]
    return []


def _addresses(p: Platform) -> list[Problem]:
    out: list[Problem] = []
    _, node_net = addressing.node_network(p)
    if p.has_proxmox:
        out += _host_in(("hypervisors", "proxmox", "gateway"), p.proxmox.gateway, node_net, "gateway")
    if p.oci:
        for i, cidr in enumerate(p.oci.network.admin_cidrs):
            if ipaddress.ip_network(cidr).prefixlen == 0:
                out.append(_err(("cloud", "oci", "network", "admin_cidrs", i), "admin ports must not be open to the whole Internet; list your own networks (like 203.0.113.7/32)"))
    subnet = ipaddress.ip_network(p.oci.network.subnet_cidr) if p.oci else node_net
    for path, _c, n in _vm_nodes(p):
        if n.ip.interface:
            out += _host_in(path + ("ip",), str(n.ip), subnet if n.instance else node_net, "address")
    for i, s in enumerate(p.services):
        if s.ip.interface:
            out += _host_in(("services", i, "ip"), str(s.ip), node_net, "address")
    for ci, c in enumerate(p.clusters):
        base = ("clusters", ci)
        if c.vip:
            out += _host_in(base + ("vip",), c.vip, subnet if c.on_instances else node_net, "VIP")
        host = urlparse(c.endpoint).hostname or ""
        try:
            ipaddress.ip_address(host)
            cp_ips = {str(n.ip.address) for n in c.control_planes if n.ip.address}
            if host != c.vip and host not in cp_ips:
                out.append(_err(base + ("endpoint",), f"endpoint address {host} is neither the VIP nor a control plane's address; use the VIP"))
        except ValueError:
            pass
    return out


def _references(p: Platform) -> list[Problem]:
    if not p.has_proxmox:
        return []  # clusters on A1 instances: tierzero.spec.instances
    out: list[Problem] = []
    px = p.proxmox
    hosts = {n.name for n in px.nodes}
    a1 = {i.name for i in p.oci.a1_instances} if p.oci else set()
    micro = {i.name: i for i in p.oci.micro_instances} if p.oci else {}
    for i, n in enumerate(px.nodes):
        if n.instance and n.instance not in a1:
            hint = f"one of: {', '.join(sorted(a1))}" if a1 else "declare it under cloud.oci.a1_instances"
            out.append(_err(("hypervisors", "proxmox", "nodes", i, "instance"), f"no A1 instance named {n.instance!r}; expected {hint}"))
    if p.oci:
        names = set(p.oci.instance_names())
        for key in ("reserved_ips", "block_volumes"):
            for i, item in enumerate(getattr(p.oci, key)):
                if item.instance not in names:
                    out.append(_err(("cloud", "oci", key, i, "instance"), f"no instance named {item.instance!r}; expected one of: {', '.join(sorted(names))}"))
    if px.qdevice:
        host = px.qdevice.host
        try:
            ipaddress.ip_address(host)
        except ValueError:
            if host not in micro:
                out.append(_err(("hypervisors", "proxmox", "qdevice", "host"), f"no micro instance named {host!r}; name a quorum-witness micro instance or give an address"))
            elif "quorum-witness" not in micro[host].roles:
                out.append(_err(("hypervisors", "proxmox", "qdevice", "host"), f"micro instance {host!r} lacks the quorum-witness role; add it to its roles"))
    for path, _, vm in _vm_nodes(p):
        if vm.node is not None and vm.node not in hosts:
            out.append(_err(path + ("node",), f"no Proxmox node named {vm.node!r}; expected one of: {', '.join(sorted(hosts))}"))
    for i, s in enumerate(p.services):
        if s.node not in hosts:
            out.append(_err(("services", i, "node"), f"no Proxmox node named {s.node!r}; expected one of: {', '.join(sorted(hosts))}"))
    services = {s.name for s in p.services}
    for ci, c in enumerate(p.clusters):
        inf = c.addons.infisical
        if inf and inf.enabled and inf.service not in services:
            out.append(_err(("clusters", ci, "addons", "infisical", "service"), f"no service named {inf.service!r}; declare it under services[]"))
        if c.addons.oci_ccm and c.addons.oci_ccm.enabled and not p.oci:
            out.append(_err(("clusters", ci, "addons", "oci_ccm"), "the OCI cloud-controller-manager needs cloud.oci; remove it for on-prem hosts"))
    if px.ceph.enabled and px.ceph.size > len(px.nodes):
        out.append(_err(("hypervisors", "proxmox", "ceph", "size"), f"size {px.ceph.size} needs that many nodes but there are {len(px.nodes)}; lower size"))
    return out


def _minor(version: str) -> tuple[int, int]:
    parts = version.lstrip("v").split(".")
    return int(parts[0]), int(parts[1])


def _versions(p: Platform) -> list[Problem]:
    out: list[Problem] = []
    table = supported_versions()
    for ci, c in enumerate(p.clusters):
        row = table.get(c.talos_contract)
        if row is None:
            out.append(_err(("clusters", ci, "talos_version"), f"Talos {c.talos_version} is not supported; expected a release of {', '.join(table)}"))
            continue
        k = _minor(c.kubernetes_version)
        lo, hi = _minor(row["kubernetes_min"]), _minor(row["kubernetes_max"])
        if not lo <= k <= hi:
            out.append(_err(("clusters", ci, "kubernetes_version"), f"Kubernetes {c.kubernetes_semver} is not supported by Talos {c.talos_contract}; expected {row['kubernetes_min']}.x to {row['kubernetes_max']}.x"))
        if _minor(c.talos_contract) >= (1, 12):
            out += _json_patches(c, ci)
        if len(c.control_planes) % 2 == 0:
            out.append(_warn(("clusters", ci, "control_planes"), f"{len(c.control_planes)} control planes: an even count adds no etcd fault tolerance; use an odd count"))
    return out


def _json_patches(c: Cluster, ci: int) -> list[Problem]:
    """From contract v1.12 a machine config is several documents, and Talos refuses RFC 6902 there."""
    where: list[tuple[Path, Any]] = [(("clusters", ci, "patches", key, i), patch) for key in ("cluster", "control_plane", "worker") for i, patch in enumerate(getattr(c.patches, key))]
    where += [(path + ("patches", i), patch) for path, _, n in _vm_nodes_of(c, ci) for i, patch in enumerate(n.patches)]
    return [
        _err(path, f"RFC 6902 patches apply only to single-document configs (Talos v1.11); Talos {c.talos_contract} needs a strategic merge patch")
        for path, patch in where
        if isinstance(patch, list)
    ]


def _vm_nodes_of(c: Cluster, ci: int) -> Iterator[tuple[Path, Cluster, Node]]:
    for key in ("control_planes", "workers"):
        for ni, n in enumerate(getattr(c, key)):
            yield ("clusters", ci, key, ni), c, n


def _fit(p: Platform) -> list[Problem]:
    return _fit_memory(p) + _fit_vcpus(p) if p.has_proxmox else []


def _fit_vcpus(p: Platform) -> list[Problem]:
    """Proxmox VE refuses to start a VM with more vCPUs than its host has cores (qemu-server
    PVE/QemuServer.pm config_to_command: "MAX N vcpus allowed per VM on this node"); the vCPUs of
    all VMs together may exceed them (they share the cores). An A1 OCPU is one core."""
    hosts = {n.name: (i, p.host_cores(n)) for i, n in enumerate(p.proxmox.nodes)}
    out = []
    for path, _, n in _vm_nodes(p):
        index, cores = hosts.get(n.host, (0, None))
        if cores is not None and n.cores > cores:
            out.append(Problem(path + ("cores",), f"{n.cores} vCPUs but host {n.node} has {cores} core{'s' if cores != 1 else ''}: "
                                                  f"Proxmox VE would not start this VM; give it at most {cores}",
                               related=("hypervisors", "proxmox", "nodes", index)))
    return out


def _fit_memory(p: Platform) -> list[Problem]:
    used: dict[str, float] = defaultdict(float)
    for _, _c, n in _vm_nodes(p):
        used[n.host] += n.memory_gb
    for s in p.services:
        used[s.node] += s.memory_gb
    out: list[Problem] = []
    for i, host in enumerate(p.proxmox.nodes):
        total = p.host_memory_gb(host)
        if total is None or host.name not in used:
            continue
        room = total - host.memory_reserve_gb
        if used[host.name] > room:
            out.append(_err(("hypervisors", "proxmox", "nodes", i), f"VMs and LXCs on {host.name} need {used[host.name]:g} GB but it has {total:g} GB minus a {host.memory_reserve_gb:g} GB reserve = {room:g} GB; move or shrink VMs"))
    return out


def _quorum(p: Platform) -> list[Problem]:
    if not p.has_proxmox:
        return []
    px = p.proxmox
    if len(px.nodes) == 2 and px.qdevice is None:
        return [_warn(("hypervisors", "proxmox"), "two nodes without a qdevice lose quorum when either stops; add qdevice.host (a quorum-witness micro instance)")]
    return []


def _addons(p: Platform) -> list[Problem]:
    out: list[Problem] = []
    _, node_net = addressing.node_network(p)
    for ci, c in enumerate(p.clusters):
        lb = c.addons.metallb
        if lb and lb.enabled:
            for ai, rng in enumerate(lb.addresses):
                path = ("clusters", ci, "addons", "metallb", "addresses", ai)
                try:
                    first, _, last = rng.partition("-")
                    lo = ipaddress.ip_network(first, strict=False) if not last else ipaddress.ip_address(first)
                    hi = ipaddress.ip_address(last) if last else None
                except ValueError:
                    out.append(_err(path, f"{rng!r} is neither a range like 10.10.0.200-10.10.0.220 nor a CIDR"))
                    continue
                addrs = [lo, hi] if hi else [lo.network_address]  # type: ignore[union-attr]
                if any(a not in node_net for a in addrs):
                    out.append(_err(path, f"{rng} is outside the node network {node_net}; L2 announcements only work inside it"))
        if c.gitops is None and any(c.addons.enabled()):
            out.append(_warn(("clusters", ci, "addons"), "add-ons are rendered but nothing syncs them without a gitops block"))
    return out


def _repo_key(url: str) -> str:
    """A repository named the same way however its URL is written (scp-like, ssh://, https://, .git or not)."""
    if "://" not in url and "@" in url and ":" in url:
        user_host, _, path = url.partition(":")
        host = user_host.rpartition("@")[2]
    else:
        parsed = urlparse(url)
        host, path = parsed.hostname or "", parsed.path
    return f"{host.lower()}/{path.strip('/').removesuffix('.git')}"


def _gitops_paths(p: Platform) -> list[Problem]:
    """Clusters pushing to one branch of one repository each own a sub-directory: the push of one
    would otherwise replace (or refuse) the other's tree."""
    out = []
    seen: dict[tuple[str, str], list[tuple[int, str]]] = defaultdict(list)
    for ci, c in enumerate(p.clusters):
        if c.gitops is None:
            continue
        key = (_repo_key(c.gitops.repo_url), c.gitops.branch)
        mine = c.gitops.path.strip("/")
        for other_ci, other in seen[key]:
            if not mine or not other or mine == other or mine.startswith(other + "/") or other.startswith(mine + "/"):
                out.append(_err(("clusters", ci, "gitops", "path"),
                                f"clusters {p.clusters[other_ci].name} and {c.name} push to the same branch of {c.gitops.repo_url} with overlapping "
                                f"paths ({other or '(the whole repository)'} and {mine or '(the whole repository)'}); give each its own gitops.path"))
        seen[key].append((ci, mine))
    return out


def _backups(p: Platform) -> list[Problem]:
    """A scheduled backup is rendered into the GitOps tree (siderolabs/talos-backup as a CronJob): without a
    gitops block nothing would apply it."""
    out = []
    for ci, c in enumerate(p.clusters):
        if c.etcd_backups.schedule is not None and c.gitops is None:
            out.append(_err(("clusters", ci, "etcd_backups", "schedule"),
                            "the scheduled backup is a CronJob in the GitOps tree, and this cluster has no gitops block; "
                            "add gitops: {repo_url: ...}, or remove schedule and run `tierzero backup` from a timer"))
    return out
