"""Capacity report: per Proxmox host, the CPU and memory left for Talos VMs, and then for workloads.

Overheads (Proxmox VE, Ceph OSD/MON/MGR, Talos and kubelet reservations) are named constants in
limits/overheads.yaml; the report prints each one it used with its source, so a reader can judge them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from tierzero.freetier.cost import num
from tierzero.freetier.limits import overheads

if TYPE_CHECKING:
    from tierzero.spec.models import Platform

Role = Literal["controlplane", "worker", "lxc"]


@dataclass(frozen=True)
class VmSpec:
    name: str
    role: Role
    cores: float
    memory_gb: float
    schedulable: bool = True  # False: a control plane that takes no workloads, or a service LXC


@dataclass
class HostCapacity:
    node: str
    source: str
    cores: float | None
    memory_gb: float | None
    pve_cores: float
    pve_memory_gb: float
    ceph_cores: float
    ceph_memory_gb: float
    vm_count: int
    vm_cores: float
    vm_memory_gb: float
    workload_cores: float
    workload_memory_gb: float
    problems: list[str] = field(default_factory=list)

    @property
    def for_vms_cores(self) -> float | None:
        return None if self.cores is None else self.cores - self.pve_cores - self.ceph_cores

    @property
    def for_vms_memory_gb(self) -> float | None:
        return None if self.memory_gb is None else self.memory_gb - self.pve_memory_gb - self.ceph_memory_gb

    @property
    def vcpus_per_core(self) -> float | None:
        """The guests' vCPUs per core left for them; above 1 they share the cores. CPU is
        time-shared, not allotted like memory: Proxmox VE lets the vCPUs of all guests exceed the
        host's cores (only one guest's may not). None: unknown, or no core left at all."""
        left = self.for_vms_cores
        return None if left is None or left <= 0 else self.vm_cores / left

    @property
    def spare_memory_gb(self) -> float | None:
        left = self.for_vms_memory_gb
        return None if left is None else left - self.vm_memory_gb

    def _cpu(self) -> str:
        left = self.for_vms_cores
        if left is None:
            return f"{num(self.vm_cores)} vCPUs (host cores unknown)"
        if left <= 0:
            return f"{num(self.vm_cores)} vCPUs with no core left after Proxmox VE: they share the host's {num(self.cores or 0)}"
        if self.vm_cores <= left:
            return f"{num(self.vm_cores)} vCPUs on {num(left)} cores (spare {num(left - self.vm_cores)})"
        return (f"{num(self.vm_cores)} vCPUs on {num(left)} cores ({num(round(self.vm_cores / left, 1))}x shared: "
                "allowed, the guests slow each other down when busy)")

    def line(self) -> str:
        def q(value: float | None, unit: str) -> str:
            return "unknown" if value is None else f"{num(value)} {unit[:-1] if unit == 'cores' and value == 1 else unit}"

        return (
            f"{self.node} ({self.source}): {q(self.cores, 'cores')} / {q(self.memory_gb, 'GB')}; "
            f"Proxmox VE {num(self.pve_cores)} cores / {num(self.pve_memory_gb)} GB, "
            f"Ceph {num(self.ceph_cores)} cores / {num(self.ceph_memory_gb)} GB; "
            f"left for Talos VMs {q(self.for_vms_cores, 'cores')} / {q(self.for_vms_memory_gb, 'GB')}; "
            f"{self.vm_count} guest(s): {self._cpu()}, {num(self.vm_memory_gb)} GB (spare {q(self.spare_memory_gb, 'GB')}); "
            f"for workloads {num(self.workload_cores)} cores / {num(self.workload_memory_gb)} GB"
        )

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(
            for_vms_cores=self.for_vms_cores,
            for_vms_memory_gb=self.for_vms_memory_gb,
            vcpus_per_core=None if self.vcpus_per_core is None else round(self.vcpus_per_core, 3),
            spare_memory_gb=self.spare_memory_gb,
        )
        return data


@dataclass
class InstanceCapacity:
    """A Talos node running directly on an A1 instance (no hypervisor): all of the instance is Talos's."""

    node: str
    instance: str
    role: Role
    cores: float
    memory_gb: float
    workload_cores: float
    workload_memory_gb: float

    def line(self) -> str:
        return (f"{self.node} ({self.role}) on A1 instance {self.instance}: {num(self.cores)} OCPU / {num(self.memory_gb)} GB, "
                f"Talos on the instance itself (no hypervisor, native speed); "
                f"for workloads {num(self.workload_cores)} cores / {num(self.workload_memory_gb)} GB")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CapacityReport:
    hosts: list[HostCapacity]
    assumptions: list[str]
    instances: list[InstanceCapacity] = field(default_factory=list)
    comparison: list[str] = field(default_factory=list)  # this design against the other one, on the same allowance

    @property
    def problems(self) -> list[str]:
        return [p for h in self.hosts for p in h.problems]

    def workloads(self) -> tuple[float, float]:
        """CPU cores and GB of memory left for workloads in the whole design."""
        cores = sum(h.workload_cores for h in self.hosts) + sum(i.workload_cores for i in self.instances)
        memory = sum(h.workload_memory_gb for h in self.hosts) + sum(i.workload_memory_gb for i in self.instances)
        return cores, memory

    def lines(self) -> list[str]:
        out = [h.line() for h in self.hosts] + [i.line() for i in self.instances]
        cores, memory = self.workloads()
        out.append(f"left for workloads in total: {num(cores)} cores / {num(memory)} GB")
        out += [p for p in self.problems] + self.comparison
        return out + ["assumptions:"] + [f"  {a}" for a in self.assumptions]

    def as_dict(self) -> dict[str, Any]:
        cores, memory = self.workloads()
        return {"hosts": [h.as_dict() for h in self.hosts], "instances": [i.as_dict() for i in self.instances],
                "workload_cores": cores, "workload_memory_gb": memory, "comparison": self.comparison,
                "problems": self.problems, "assumptions": self.assumptions}


def _o(key: str) -> float:
    return overheads()[key].value


def vm_workload_share(vm: VmSpec) -> tuple[float, float]:
    """CPU and memory a Talos VM leaves for workloads after kubelet, eviction and control-plane reservations."""
    if not vm.schedulable:
        return 0.0, 0.0
    memory_reserved = _o(
        "talos_system_reserved_memory_gb_controlplane" if vm.role == "controlplane" else "talos_system_reserved_memory_gb_worker"
    ) + _o("kubelet_eviction_memory_gb")
    cpu_reserved = _o("talos_system_reserved_cpu_cores")
    if vm.role == "controlplane":
        memory_reserved += _o("control_plane_components_memory_gb")
        cpu_reserved += _o("control_plane_components_cpu_cores")
    return max(0.0, vm.cores - cpu_reserved), max(0.0, vm.memory_gb - memory_reserved)


def host_capacity(
    node: str,
    source: str,
    cores: float | None,
    memory_gb: float | None,
    *,
    vms: list[VmSpec],
    pve_memory_gb: float | None = None,
    ceph_osds: int = 0,
) -> HostCapacity:
    """The capacity of one Proxmox host running `vms`, with `ceph_osds` OSDs (0: no Ceph on this host)."""
    ceph = ceph_osds > 0
    shares = [vm_workload_share(vm) for vm in vms]
    host = HostCapacity(
        node=node,
        source=source,
        cores=cores,
        memory_gb=memory_gb,
        pve_cores=_o("proxmox_ve_cpu_cores"),
        pve_memory_gb=_o("proxmox_ve_memory_gb") if pve_memory_gb is None else pve_memory_gb,
        ceph_cores=(ceph_osds * _o("ceph_osd_cpu_cores") + _o("ceph_mon_mgr_cpu_cores")) if ceph else 0.0,
        ceph_memory_gb=(ceph_osds * _o("ceph_osd_memory_gb") + _o("ceph_mon_mgr_memory_gb")) if ceph else 0.0,
        vm_count=len(vms),
        vm_cores=sum(vm.cores for vm in vms),
        vm_memory_gb=sum(vm.memory_gb for vm in vms),
        workload_cores=sum(s[0] for s in shares),
        workload_memory_gb=sum(s[1] for s in shares),
    )
    if memory_gb is None:
        host.problems.append(f"{node}: host memory unknown, so tierzero cannot check that its VMs fit")
    elif (host.for_vms_memory_gb or 0.0) <= 0:
        host.problems.append(
            f"{node}: nothing is left for Talos VMs: {num(memory_gb)} GB minus Proxmox VE {num(host.pve_memory_gb)} GB"
            + (f" and Ceph {num(host.ceph_memory_gb)} GB" if ceph else "")
        )
    elif (host.spare_memory_gb or 0.0) < 0:
        host.problems.append(
            f"{node}: Talos VMs need {num(host.vm_memory_gb)} GB but only {num(host.for_vms_memory_gb or 0)} GB is left "
            f"after Proxmox VE" + (" and Ceph" if ceph else "") + f"; shrink the VMs by {num(-(host.spare_memory_gb or 0))} GB"
        )
    return host  # a VM with more vCPUs than its host has cores is a spec error: tierzero.spec.semantic


_DESIGN_KEYS = ("talos_oracle_image_gb", "tcg_emulation_slowdown")  # shown only by the reports that use them


def assumptions_used(ceph: bool, *, proxmox: bool = True, comparison: bool = False) -> list[str]:
    keys = [k for k in overheads() if (ceph or not k.startswith("ceph_")) and (proxmox or not k.startswith("proxmox_"))
            and k not in _DESIGN_KEYS]
    if comparison:
        keys.append("tcg_emulation_slowdown")
    return [f"{k} = {num(overheads()[k].value)}: {overheads()[k].source}" for k in keys]


def _instance_capacity(platform: Platform) -> list[InstanceCapacity]:
    out = []
    for cluster, node, inst in platform.talos_instances():
        role = cluster.node_and_role(node.name)[0]
        schedulable = role == "worker" or cluster.allow_scheduling_on_control_planes
        cores, memory = vm_workload_share(VmSpec(node.name, role, float(inst.ocpus), float(inst.memory_gb), schedulable))
        out.append(InstanceCapacity(node.name, inst.name, role, float(inst.ocpus), float(inst.memory_gb), cores, memory))
    return out


def _design_comparison(platform: Platform, instances: list[InstanceCapacity], hosts: list[HostCapacity]) -> list[str]:
    """This design against the other built-in one on the same A1 allowance: the oci-talos blueprint (Talos on the
    instances) against oci-free-tier (Proxmox VE hosts with Talos VMs under software emulation), both 2 x 1 OCPU / 6 GB."""
    if platform.oci is None or not platform.oci.a1_instances:
        return []
    other_name = "oci-free-tier" if instances else "oci-talos"
    other = _blueprint_capacity(other_name)
    if other is None:
        return []
    cores, memory = (sum(i.workload_cores for i in instances) + sum(h.workload_cores for h in hosts),
                     sum(i.workload_memory_gb for i in instances) + sum(h.workload_memory_gb for h in hosts))
    o_cores, o_memory = other
    slow = num(overheads()["tcg_emulation_slowdown"].value)
    here = "Talos directly on A1 (native speed)" if instances else "Proxmox VE hosts with Talos VMs (software emulation on A1)"
    there = ("the Proxmox design (blueprint oci-free-tier: Proxmox VE hosts, Talos VMs under software emulation, "
             f"CPU-bound work about {slow}x slower)") if instances else "Talos directly on the A1 instances (blueprint oci-talos, native speed)"
    return [f"compared on the same A1 allowance: this design, {here}, leaves {num(cores)} cores / {num(memory)} GB for "
            f"workloads; {there} leaves {num(o_cores)} cores / {num(o_memory)} GB"]


def _blueprint_capacity(name: str) -> tuple[float, float] | None:
    import yaml

    from tierzero.blueprints import blueprint_names, blueprint_text
    from tierzero.spec.models import Platform

    if name not in blueprint_names():
        return None
    other = Platform.model_validate(yaml.safe_load(blueprint_text(name)))
    report = capacity_report(other, compare=False)
    return report.workloads()


def capacity_report(platform: Platform, *, compare: bool = True) -> CapacityReport:
    """Per node of hypervisors.proxmox.nodes: CPU and memory for Talos VMs (and service LXCs), then for workloads;
    per Talos node on an A1 instance: what it leaves for workloads; with `compare`, the same figures of the other
    built-in OCI design (a line saying how they differ)."""
    instances = _instance_capacity(platform)
    hosts = _host_capacity(platform) if platform.has_proxmox else []
    ceph = platform.has_proxmox and platform.proxmox.ceph.enabled
    comparison = _design_comparison(platform, instances, hosts) if compare else []
    return CapacityReport(hosts, assumptions_used(ceph, proxmox=bool(hosts), comparison=bool(comparison)), instances, comparison)


def _host_capacity(platform: Platform) -> list[HostCapacity]:
    proxmox = platform.proxmox
    vms_by_node: dict[str, list[VmSpec]] = {}
    for cluster in platform.clusters:
        for role, node in cluster.nodes():
            schedulable = role == "worker" or cluster.allow_scheduling_on_control_planes
            if node.node is not None:
                vms_by_node.setdefault(node.node, []).append(VmSpec(node.name, role, node.cores, node.memory_gb, schedulable))
    for service in platform.services:
        vms_by_node.setdefault(service.node, []).append(VmSpec(service.name, "lxc", service.cores, service.memory_gb, False))
    hosts = []
    ceph = proxmox.ceph.enabled
    for host in proxmox.nodes:
        source = f"A1 instance {host.instance}" if host.instance else f"host {host.address}"
        osds = (len(host.osd_devices) or 1) if ceph else 0
        cores, memory = platform.host_cores(host), platform.host_memory_gb(host)
        hosts.append(
            host_capacity(
                host.name,
                source,
                None if cores is None else float(cores),
                memory,
                vms=vms_by_node.get(host.name, []),
                pve_memory_gb=host.memory_reserve_gb,
                ceph_osds=osds,
            )
        )
    return hosts
