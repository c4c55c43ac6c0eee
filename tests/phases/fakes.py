"""Talos and Kubernetes fakes for the platform tests, answering from fakepve's VM state: a node's
Talos API answers once its VM runs; etcd has members once bootstrapped; nodes are Ready when
their VMs run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tierzero.errors import OperationError
from tierzero.phases.platform import PlatformHooks


@dataclass
class Member:
    hostname: str


@dataclass
class Node:
    name: str
    ready: bool


@dataclass
class TalosWorld:
    pve: Any  # FakePve
    spec: Any
    bootstraps: list[str] = field(default_factory=list)
    etcd_down: bool = False
    cloud_init: bool = True  # False: VMs boot into maintenance mode and need an apply
    applied: dict[str, bytes] = field(default_factory=dict)

    def vm_running(self, name: str) -> bool:
        return any(vm.name == name and vm.status == "running" for vm in self.pve.vms)

    def configured(self, name: str) -> bool:
        return self.vm_running(name) and (self.cloud_init or name in self.applied)

    def cluster_of(self, address: str) -> tuple[Any, Any]:
        for cluster in self.spec.clusters:
            for _, node in cluster.nodes():
                if node.ip.split("/")[0] == address:
                    return cluster, node
        raise KeyError(address)

    def hooks(self) -> PlatformHooks:
        from tierzero.phases.platform import DEFAULT_HOOKS

        return PlatformHooks(
            machine_config=lambda ctx, cluster, node: f"version: v1alpha1\nmachine:\n  type: test\n  name: {node}\n".encode(),
            talosconfig=lambda ctx, cluster: f"context: {cluster.name}\n".encode(),
            talos=lambda ctx, cluster, address: FakeTalos(self, address),
            kube=lambda ctx, cluster: FakeKube(self, cluster),
            image_url=DEFAULT_HOOKS.image_url,
            talos_maintenance=lambda ctx, address: FakeMaintenance(self, address),
        )


class FakeMaintenance:
    def __init__(self, world: TalosWorld, address: str) -> None:
        self.world = world
        self.cluster, self.node = world.cluster_of(address)

    async def version(self, timeout: float | None = None) -> Any:
        if not self.world.vm_running(self.node.name) or self.world.configured(self.node.name):
            raise OperationError("not in maintenance mode")
        return object()

    async def apply_configuration(self, config: bytes, mode: str = "auto") -> Any:
        self.world.applied[self.node.name] = config
        return object()

    async def close(self) -> None:
        return None


class FakeTalos:
    def __init__(self, world: TalosWorld, address: str) -> None:
        self.world = world
        self.cluster, self.node = world.cluster_of(address)

    async def version(self, timeout: float | None = None) -> Any:
        return await self.wait_ready()

    async def wait_ready(self, timeout: float = 600.0, on_retry: Any = None) -> Any:
        if not self.world.configured(self.node.name):
            raise OperationError(f"Talos API of {self.node.name} not ready")
        return type("Version", (), {"tag": self.cluster.talos_version})()

    async def bootstrap(self) -> bool:
        if self.cluster.name in self.world.bootstraps:
            return False
        self.world.bootstraps.append(self.cluster.name)
        return True

    async def etcd_members(self) -> list[Member]:
        if self.world.etcd_down or self.cluster.name not in self.world.bootstraps:
            raise OperationError("etcd is not running")
        return [Member(n.name) for n in self.cluster.control_planes if self.world.vm_running(n.name)]

    async def kubeconfig(self) -> bytes:
        return f"apiVersion: v1\nkind: Config\nclusters: [{{name: {self.cluster.name}}}]\n".encode()

    async def close(self) -> None:
        return None


class FakeKube:
    def __init__(self, world: TalosWorld, cluster: Any) -> None:
        self.world, self.cluster = world, cluster

    def version(self) -> str:
        return "v1.36.2"

    def nodes(self) -> list[Node]:
        return [Node(n.name, self.world.vm_running(n.name)) for _, n in self.cluster.nodes()]
