"""What the spec describes, as one drawable tree: groups (the cloud, the VCN, a Proxmox host, a
cluster) holding boxes (an instance, a Talos VM, an LXC, an add-on), and links between boxes.
Both the Mermaid and the Graphviz writers draw this same tree, so the two pictures never differ
in content. Pure: a Platform in, a Topology out."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from tierzero.render.diagram.schedule import DeploySnapshot
from tierzero.render.vmids import assign_vmids
from tierzero.spec.models import OCI, Cluster, Platform, Proxmox

Kind = Literal["cloud", "network", "instance", "host", "vm", "lxc", "cluster", "addon", "gitops", "external"]


@dataclass(frozen=True)
class Box:
    """One drawn node: `lines` are its label, the first one its name."""

    id: str
    lines: tuple[str, ...]
    kind: Kind


@dataclass
class Group:
    id: str
    lines: tuple[str, ...]
    kind: Kind
    boxes: list[Box] = field(default_factory=list)
    groups: list["Group"] = field(default_factory=list)

    def walk_boxes(self) -> list[Box]:
        return [*self.boxes, *(b for g in self.groups for b in g.walk_boxes())]


@dataclass(frozen=True)
class Link:
    source: str
    target: str
    label: str = ""
    dotted: bool = False


@dataclass
class Topology:
    title: str
    groups: list[Group] = field(default_factory=list)
    boxes: list[Box] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)

    def all_boxes(self) -> list[Box]:
        return [*self.boxes, *(b for g in self.groups for b in g.walk_boxes())]


def node_id(*parts: str) -> str:
    """A diagram id from names: letters, digits and underscores only (Mermaid and DOT both accept these bare)."""
    return "_".join(re.sub(r"[^A-Za-z0-9]", "_", p) for p in parts)


def _gb(value: float) -> str:
    return f"{value:g} GB"


def _cores(count: int) -> str:
    return f"{count} core" + ("" if count == 1 else "s")


def topology(platform: Platform, snapshot: DeploySnapshot | None = None) -> Topology:
    """The platform's parts and how they connect, with what deploys learned (instance addresses, load balancers)
    when a snapshot gives it. Ids are stable for a given spec (the same spec and state draw the same text)."""
    top = Topology(title=f"tierzero platform {platform.metadata.name}")
    placed = dict(snapshot.placed) if snapshot is not None else {}
    balancers = dict(snapshot.load_balancers) if snapshot is not None else {}
    admin = Box(node_id("net", "admin"), ("admins", *_admin_cidrs(platform.oci)), "external")
    if platform.oci is not None:
        top.boxes.append(admin)
        talos = {i.name: f"Talos {role}, cluster {c.name}" for c in platform.clusters for role, n in c.nodes()
                 for i in platform.oci.a1_instances if n.instance == i.name}
        top.groups.append(_cloud(platform.oci, talos, placed, top))
    if platform.has_proxmox:
        top.groups.append(_proxmox(platform, top))
    for cluster in platform.clusters:
        top.groups.append(_cluster(cluster, platform, balancers.get(cluster.name), top))
    return top


def _admin_cidrs(oci: OCI | None) -> tuple[str, ...]:
    return tuple(oci.network.admin_cidrs) if oci is not None else ()


def _cloud(oci: OCI, talos: dict[str, str], placed: dict[str, tuple[str, ...]], top: Topology) -> Group:
    net = oci.network
    budget = oci.budget
    cloud = Group(node_id("oci"), (f"OCI {oci.region}", f"budget {budget.amount:g}, alert at {budget.alert_threshold_percent:g}% spent"), "cloud")
    vcn = Group(node_id("oci", "vcn"), (f"VCN {net.vcn_cidr}",), "network")
    ingress = ["SSH, Talos API, Kubernetes API from admins"] + (["80/443 from anywhere"] if net.allow_http else [])
    subnet = Group(node_id("oci", "subnet"), (f"subnet {net.subnet_cidr}", *ingress), "network")
    reserved = {r.instance: r.name for r in oci.reserved_ips}
    volumes: dict[str, list[str]] = {}
    for v in oci.block_volumes:
        volumes.setdefault(v.instance, []).append(f"{v.name} {v.size_gb} GB")
    for a1 in oci.a1_instances:
        lines = [a1.name, f"A1.Flex {a1.ocpus} OCPU / {a1.memory_gb} GB", f"boot {a1.boot_volume_gb} GB", talos.get(a1.name, "")]
        subnet.boxes.append(Box(node_id("oci", a1.name), _extras((*lines, *placed.get(a1.name, ())), a1.name, reserved, volumes), "instance"))
    for micro in oci.micro_instances:
        lines = [micro.name, "E2.1.Micro", ", ".join(micro.roles), *placed.get(micro.name, ())]
        subnet.boxes.append(Box(node_id("oci", micro.name), _extras(tuple(lines), micro.name, reserved, volumes), "instance"))
        if "bastion" in micro.roles:
            top.links.append(Link(node_id("net", "admin"), node_id("oci", micro.name), "SSH"))
    vcn.groups.append(subnet)
    cloud.groups.append(vcn)
    return cloud


def _extras(lines: tuple[str, ...], name: str, reserved: dict[str, str], volumes: dict[str, list[str]]) -> tuple[str, ...]:
    more = [f"reserved IP {reserved[name]}"] if name in reserved else []
    more += [f"volume {v}" for v in volumes.get(name, [])]
    return tuple(line for line in (*lines, *more) if line)


def _proxmox(platform: Platform, top: Topology) -> Group:
    pve: Proxmox = platform.proxmox
    lines = [f"Proxmox VE cluster {pve.cluster_name}", f"network {pve.network} on {pve.bridge}" + (f" VLAN {pve.vlan}" if pve.vlan else ""),
             f"gateway {pve.gateway}"]
    if pve.ceph.enabled:
        lines.append(f"Ceph pool {pve.ceph.pool} size {pve.ceph.size}/{pve.ceph.min_size}" + (f", network {pve.ceph.network}" if pve.ceph.network else ""))
    if pve.tailscale.enabled:
        lines.append("Tailscale" + (f" routes {', '.join(pve.tailscale.advertise_routes)}" if pve.tailscale.advertise_routes else ""))
    group = Group(node_id("pve"), tuple(lines), "host")
    for host in pve.nodes:
        where = f"on {host.instance}" if host.instance else f"at {host.address}"
        size = [_cores(c) for c in [platform.host_cores(host)] if c] + [_gb(m) for m in [platform.host_memory_gb(host)] if m]
        host_group = Group(node_id("pve", host.name), (f"host {host.name}", where + (f", {', '.join(size)}" if size else "")), "host")
        group.groups.append(host_group)
        if host.instance and platform.oci is not None:
            top.links.append(Link(node_id("oci", host.instance), node_id("pve", host.name, "pve"), "runs Proxmox VE", dotted=True))
        osds = host.osd_devices or ([pve.ceph.osd_device] if pve.ceph.enabled and pve.ceph.osd_device else [])
        host_group.boxes.append(Box(node_id("pve", host.name, "pve"), ("Proxmox VE", host.name, *([f"Ceph OSD {', '.join(osds)}"] if osds else [])), "host"))
    hosts = {g.id: g for g in group.groups}
    vmids = assign_vmids(platform)
    for cluster in platform.clusters:
        for role, node in cluster.nodes():
            if not node.node:
                continue
            lines2 = (node.name, f"Talos {role}, VM {vmids[(cluster.name, node.name)]}", f"{_cores(node.cores)} / {_gb(node.memory_gb)} / {node.disk_gb} GB", f"{node.ip}")
            box = Box(node_id("vm", cluster.name, node.name), lines2, "vm")
            hosts[node_id("pve", node.node)].boxes.append(box)
    for svc in platform.services:
        box = Box(node_id("lxc", svc.name), (svc.name, f"{svc.kind} LXC {svc.vmid}", f"{_cores(svc.cores)} / {_gb(svc.memory_gb)}", f"{svc.ip}"), "lxc")
        target = hosts.get(node_id("pve", svc.node))
        if target is not None:
            target.boxes.append(box)
    if pve.qdevice is not None and platform.oci is not None and pve.qdevice.host in platform.oci.instance_names():
        top.links.append(Link(node_id("oci", pve.qdevice.host), node_id("pve", pve.nodes[0].name, "pve"), "QDevice vote", dotted=True))
    return group


def _cluster(cluster: Cluster, platform: Platform, balancer: str | None, top: Topology) -> Group:
    net = cluster.network
    lines = [f"cluster {cluster.name}", f"Talos {cluster.talos_version}, Kubernetes {cluster.kubernetes_semver}, {cluster.arch}",
             f"pods {net.pod_cidr}, services {net.service_cidr}", f"CNI {cluster.cni}" + (" (no kube-proxy)" if cluster.cni == "cilium" else "")]
    group = Group(node_id("cluster", cluster.name), tuple(lines), "cluster")
    api = Box(node_id("cluster", cluster.name, "api"), ("Kubernetes API", cluster.endpoint, *([f"VIP {cluster.vip}"] if cluster.vip else []),
                                                        *([f"load balancer {balancer}"] if balancer else [])), "cluster")
    group.boxes.append(api)
    for _, node in cluster.nodes():
        source = node_id("vm", cluster.name, node.name) if node.node else None
        if node.instance and platform.oci is not None:
            source = node_id("oci", node.instance)
        if source is not None:
            top.links.append(Link(source, api.id, dotted=True))  # the role is in the node's own label
    for key, addon in cluster.addons.enabled().items():
        lines2 = [key.replace("_", "-")]
        pools = getattr(addon, "addresses", None)
        if pools:
            lines2.append(f"{getattr(addon, 'implementation', '')} pool {', '.join(pools)}".strip())
        group.boxes.append(Box(node_id("cluster", cluster.name, key), tuple(lines2), "addon"))
    if cluster.gitops is not None:
        g = cluster.gitops
        repo = Box(node_id("cluster", cluster.name, "repo"), ("Git repository", g.repo_url, f"branch {g.branch}" + (f", path {g.path}" if g.path else "")),
                   "external")
        top.boxes.append(repo)
        engine = Box(node_id("cluster", cluster.name, "gitops"), ("Flux" if g.engine == "flux" else "Argo CD", "reconciles add-ons"), "gitops")
        group.boxes.append(engine)
        top.links.append(Link(repo.id, engine.id, "pulls"))
    return group
