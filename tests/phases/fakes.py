"""Talos and Kubernetes fakes for the platform tests, answering from fakepve's VM state: a node's
Talos API answers once its VM runs; etcd has members once bootstrapped; nodes are Ready when
their VMs run. They implement the protocols of `tierzero.adapters.protocols` (mypy checks it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tierzero.adapters.errors import AuthenticationFailed
from tierzero.adapters.kubernetes import NodeStatus
from tierzero.adapters.talos_errors import TalosNotImplemented, TalosTLSError, TalosUnavailable
from tierzero.adapters.protocols import ApplyMode, ApplyResult, EtcdMember, KubernetesNodes, ServiceStatus, TalosApi, TalosMaintenanceApi, VersionInfo
from tierzero.engine.step import StepContext
from tierzero.errors import OperationError
from tierzero.phases.platform import PlatformHooks
from tierzero.spec.models import Cluster, Node, Platform


@dataclass
class TalosWorld:
    pve: Any  # fakepve.FakePve
    spec: Platform
    bootstraps: list[str] = field(default_factory=list)
    etcd_down: bool = False
    cloud_init: bool = True  # False: VMs boot into maintenance mode and need an apply
    applied: dict[str, bytes] = field(default_factory=dict)
    reapplied: dict[str, bytes] = field(default_factory=dict)  # configs applied to configured nodes
    untrusted: bool = False  # the nodes refuse the talosconfig's client certificate (UNAUTHENTICATED)
    probes: list[str] = field(default_factory=list)  # every authenticated Version call, by node
    maintenance_version: bool = False  # True: Talos >= 1.13, which answers Version in maintenance mode
    refuse_apply: str | None = None  # the maintenance API rejects the config with this message

    def vm_running(self, name: str) -> bool:
        return any(vm.name == name and vm.status == "running" for vm in self.pve.vms)

    def configured(self, name: str) -> bool:
        return self.vm_running(name) and (self.cloud_init or name in self.applied)

    def cluster_of(self, address: str) -> tuple[Cluster, Node]:
        for cluster in self.spec.clusters:
            for _, node in cluster.nodes():
                if str(node.ip.address) == address:
                    return cluster, node
        raise KeyError(address)

    def hooks(self) -> PlatformHooks:
        def machine_config(ctx: StepContext, cluster: Cluster, node: str) -> bytes:
            return f"version: v1alpha1\nmachine:\n  type: test\n  name: {node}\n".encode()

        def talosconfig(ctx: StepContext, cluster: Cluster) -> bytes:
            return f"context: {cluster.name}\n".encode()

        def talos(ctx: StepContext, cluster: Cluster, address: str) -> TalosApi:
            return FakeTalos(self, address)

        def kube(ctx: StepContext, cluster: Cluster) -> KubernetesNodes:
            return FakeKube(self, cluster)

        def maintenance(ctx: StepContext, address: str) -> TalosMaintenanceApi:
            return FakeMaintenance(self, address)

        return PlatformHooks(machine_config=machine_config, talosconfig=talosconfig, talos=talos, kube=kube,
                             talos_maintenance=maintenance)


def _version(cluster: Cluster, node: Node) -> VersionInfo:
    return VersionInfo(tag=cluster.talos_version, sha="", os="Talos", arch=cluster.arch, platform="nocloud",
                       platform_mode="cloud", hostname=node.name)


class FakeMaintenance:
    def __init__(self, world: TalosWorld, address: str) -> None:
        self.world = world
        self.cluster, self.node = world.cluster_of(address)

    def _reachable(self) -> None:
        if not self.world.vm_running(self.node.name):
            raise TalosUnavailable(f"Talos API on {self.node.name}: UNAVAILABLE: connection refused")
        if self.world.configured(self.node.name):
            raise TalosTLSError(f"TLS with the Talos API on {self.node.name} failed: certificate required")

    async def version(self, timeout: float | None = None) -> VersionInfo:
        self._reachable()
        if not self.world.maintenance_version:
            raise TalosNotImplemented(f"Talos API Version on {self.node.name}: UNIMPLEMENTED: API is not implemented in maintenance mode")
        return _version(self.cluster, self.node)

    async def apply_configuration(self, config: bytes | str, mode: ApplyMode = "auto", *, dry_run: bool = False) -> ApplyResult:
        self._reachable()
        if self.world.refuse_apply:
            raise OperationError(f"Talos API ApplyConfiguration on {self.node.name}: INVALID_ARGUMENT: {self.world.refuse_apply}")
        self.world.applied[self.node.name] = config.encode() if isinstance(config, str) else config
        return ApplyResult(mode="reboot", details="", warnings=())

    async def close(self) -> None:
        return None


class FakeTalos:
    def __init__(self, world: TalosWorld, address: str) -> None:
        self.world = world
        self.cluster, self.node = world.cluster_of(address)

    async def version(self, timeout: float | None = None) -> VersionInfo:
        self.world.probes.append(self.node.name)
        if self.world.untrusted:
            raise AuthenticationFailed(f"Talos API Version on {self.node.name}: UNAUTHENTICATED", hint="regenerate the talosconfig")
        if not self.world.configured(self.node.name):
            raise TalosUnavailable(f"Talos API of {self.node.name} not ready")
        return _version(self.cluster, self.node)

    async def apply_configuration(self, config: bytes | str, mode: ApplyMode = "auto", *, dry_run: bool = False) -> ApplyResult:
        if not self.world.configured(self.node.name):
            raise OperationError(f"Talos API of {self.node.name} not ready")
        if not dry_run:
            self.world.reapplied[self.node.name] = config.encode() if isinstance(config, str) else config
        return ApplyResult(mode="no_reboot", details="applied without a reboot", warnings=())

    async def bootstrap(self, *, recover_etcd: bool = False) -> bool:
        if self.cluster.name in self.world.bootstraps:
            return False
        self.world.bootstraps.append(self.cluster.name)
        return True

    async def etcd_members(self) -> list[EtcdMember]:
        if self.world.etcd_down or self.cluster.name not in self.world.bootstraps:
            raise OperationError("etcd is not running")
        return [EtcdMember(id=i, hostname=n.name, peer_urls=(), client_urls=(), is_learner=False)
                for i, n in enumerate(self.cluster.control_planes) if self.world.vm_running(n.name)]

    async def kubeconfig(self) -> bytes:
        return f"apiVersion: v1\nkind: Config\nclusters: [{{name: {self.cluster.name}}}]\n".encode()

    async def services(self) -> list[ServiceStatus]:
        if not self.world.configured(self.node.name):
            raise TalosUnavailable(f"Talos API of {self.node.name} not ready")
        names = ("apid", "kubelet", "etcd") if self.node in self.cluster.control_planes else ("apid", "kubelet")
        return [ServiceStatus(id=n, state="Running", healthy=True, health_unknown=False, message="") for n in names]

    async def upgrade(self, image: str, *, force: bool = False) -> str:
        raise OperationError(f"the fake Talos runs the spec's version already; not upgraded to {image}")

    async def etcd_snapshot(self) -> bytes:
        raise OperationError("the fake Talos keeps no etcd data")

    async def etcd_recover(self, snapshot: bytes) -> None:
        raise OperationError("the fake Talos keeps no etcd data")

    async def close(self) -> None:
        return None


class FakeKube:
    def __init__(self, world: TalosWorld, cluster: Cluster) -> None:
        self.world, self.cluster = world, cluster

    def version(self) -> str:
        return "v1.36.2"

    def nodes(self) -> list[NodeStatus]:
        return [NodeStatus(n.name, self.world.vm_running(n.name), (), "v1.36.2") for _, n in self.cluster.nodes()]
