"""The summary `check` prints: clusters, nodes, hosts, resources, then the free-tier fit."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from tierzero.spec import LoadedSpec


def spec_summary(loaded: LoadedSpec) -> dict[str, Any]:
    p = loaded.platform
    vm_mem: dict[str, float] = defaultdict(float)
    vm_count: dict[str, int] = defaultdict(int)
    for c in p.clusters:
        for _, n in c.nodes():
            vm_mem[n.node] += n.memory_gb
            vm_count[n.node] += 1
    for s in p.services:
        vm_mem[s.node] += s.memory_gb
        vm_count[s.node] += 1
    hosts = []
    for n in p.proxmox.nodes:
        hosts.append({
            "name": n.name,
            "source": f"oci:{n.instance}" if n.instance else n.address,
            "cores": p.host_cores(n),
            "memory_gb": p.host_memory_gb(n),
            "reserve_gb": n.memory_reserve_gb,
            "guests": vm_count[n.name],
            "guest_memory_gb": vm_mem[n.name],
        })
    clusters = [{
        "name": c.name,
        "talos": c.talos_version,
        "kubernetes": c.kubernetes_semver,
        "endpoint": c.endpoint,
        "control_planes": len(c.control_planes),
        "workers": len(c.workers),
        "cni": c.cni,
        "gitops": c.gitops.engine if c.gitops else None,
        "addons": list(c.addons.enabled()),
        "load_balancers": _load_balancer_line(c),
    } for c in p.clusters]
    cloud = None
    if p.oci:
        cloud = {
            "region": p.oci.region,
            "a1": [{"name": i.name, "ocpus": i.ocpus, "memory_gb": i.memory_gb, "boot_volume_gb": i.boot_volume_gb} for i in p.oci.a1_instances],
            "micro": [{"name": i.name, "roles": i.roles} for i in p.oci.micro_instances],
        }
    return {
        "name": p.metadata.name,
        "cloud": cloud,
        "proxmox": {"cluster": p.proxmox.cluster_name, "hosts": hosts, "ceph": p.proxmox.ceph.enabled},
        "clusters": clusters,
        "services": [{"name": s.name, "kind": s.kind, "node": s.node, "vmid": s.vmid} for s in p.services],
    }


def _load_balancer_line(cluster: Any) -> str | None:
    """What tierzero does about Talos' exclude-from-external-load-balancers label for this cluster."""
    from tierzero.render.load_balancers import exclude_label_decision

    return exclude_label_decision(cluster).describe()


def print_summary(con, loaded: LoadedSpec) -> None:
    from rich.table import Table

    data = spec_summary(loaded)
    con.print(f"{loaded.path}: valid spec for platform {data['name']!r}", markup=False)
    for w in loaded.warnings:
        con.print(f"warning: {w.render(str(loaded.path))}", markup=False)
    if data["cloud"]:
        t = Table(title=f"OCI ({data['cloud']['region']})", title_justify="left")
        for col in ("instance", "shape", "OCPU", "GB", "boot GB"):
            t.add_column(col)
        for i in data["cloud"]["a1"]:
            t.add_row(i["name"], "VM.Standard.A1.Flex", str(i["ocpus"]), str(i["memory_gb"]), str(i["boot_volume_gb"]))
        for i in data["cloud"]["micro"]:
            t.add_row(f"{i['name']} ({', '.join(i['roles'])})", "VM.Standard.E2.1.Micro", "1/8", "1", "50")
        con.print(t)
    t = Table(title=f"Proxmox VE cluster {data['proxmox']['cluster']!r}" + (" with Ceph" if data["proxmox"]["ceph"] else ""), title_justify="left")
    for col in ("host", "source", "cores", "memory GB", "reserve GB", "guests", "guest GB"):
        t.add_column(col)
    for h in data["proxmox"]["hosts"]:
        t.add_row(h["name"], str(h["source"]), str(h["cores"] or "?"), f"{h['memory_gb']:g}" if h["memory_gb"] else "?", f"{h['reserve_gb']:g}", str(h["guests"]), f"{h['guest_memory_gb']:g}")
    con.print(t)
    for c in data["clusters"]:
        con.print(
            f"cluster {c['name']}: Talos {c['talos']}, Kubernetes {c['kubernetes']}, {c['control_planes']} control plane(s), "
            f"{c['workers']} worker(s), CNI {c['cni']}, GitOps {c['gitops'] or 'none'}, endpoint {c['endpoint']}",
            markup=False,
        )
        if c["addons"]:
            con.print(f"  add-ons: {', '.join(c['addons'])}", markup=False)
        if c["load_balancers"]:
            con.print(f"  load balancers: {c['load_balancers']}", markup=False)
    for s in data["services"]:
        con.print(f"service {s['name']} ({s['kind']}) on {s['node']} as LXC {s['vmid']}", markup=False)


@dataclass
class FitSection:
    charged: bool = False
    lines: list[str] = field(default_factory=list)
    payload: dict[str, Any] = field(default_factory=dict)

    def print(self, con) -> None:
        for line in self.lines:
            con.print(line, markup=False)

    def as_json(self) -> dict[str, Any]:
        return self.payload


def fit_section(loaded: LoadedSpec, limits_date: str | None) -> FitSection:
    """The free-tier fit and capacity report; `charged` (or a hard limit broken) makes `check` exit 1."""
    from tierzero.cli.guard_cmd import add_fit_to_check

    fit = add_fit_to_check(loaded.platform, limits_date)
    return FitSection(fit.charged or fit.refused, fit.lines, fit.payload)
