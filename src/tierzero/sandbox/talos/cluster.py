"""The clusters the Talos stand-in's nodes form (`TalosSandboxCluster`: bootstrapped or not, the
OS CA key a worker's trustd would fetch, etcd's members and keys) and the registry that finds a
node by address (`TalosSandboxRegistry`). Nodes are `tierzero.sandbox.talos.server.TalosNodeServer`s,
not imported here."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any, Callable

from tierzero.adapters.talos_proto import machine_pb2

Node = Any  # a TalosNodeServer


@dataclass
class TalosSandboxCluster:
    name: str
    bootstrapped: bool = False
    os_ca_key: bytes | None = None
    nodes: dict[str, Node] = field(default_factory=dict)  # by address
    etcd: dict[str, str] = field(default_factory=dict)  # etcd's keys (`tierzero.sandbox.talos.etcd`)
    etcd_revision: int = 0

    def etcd_put(self, key: str, value: str) -> None:
        """A write to etcd (a workload's, through the API server): what snapshots carry."""
        self.etcd[key] = value
        self.etcd_revision += 1

    def etcd_members(self) -> list[machine_pb2.EtcdMember]:
        if not self.bootstrapped:
            return []
        return [
            machine_pb2.EtcdMember(
                id=zlib.crc32(n.hostname.encode()) + 1, hostname=n.hostname,
                peer_urls=[f"https://{n.address}:2380"], client_urls=[f"https://{n.address}:2379"],
            )
            for n in self.nodes.values()
            if n.config is not None and n.config.control_plane and n.in_etcd
        ]

    def etcd_upgrade_problem(self) -> str | None:
        """Why upgrading a control plane now would risk etcd's quorum, as ValidateForUpgrade says
        it (siderolabs/talos v1.12.11 internal/pkg/etcd/etcd.go): two members; a member not
        answering (its node rebooting or off) is not healthy. None when the upgrade may go on."""
        members = [n for n in self.nodes.values() if n.config is not None and n.config.control_plane and n.in_etcd]
        if len(members) == 2:
            return f"etcd member count({len(members)}) is insufficient to maintain quorum if upgrade commences"
        for n in members:
            if not n.answering:
                member_id = zlib.crc32(n.hostname.encode()) + 1
                return (f"etcd member {member_id:016x} is not healthy; all members must be healthy to perform an upgrade: "
                        "context deadline exceeded")
        return None


@dataclass
class TalosSandboxRegistry:
    clusters: dict[str, TalosSandboxCluster] = field(default_factory=dict)
    persist: Callable[[], None] | None = None
    # installer reference -> what it installs (`tierzero.sandbox.factory_registry.installer`);
    # LookupError with the registry's answer when it cannot be pulled
    installers: Callable[[str], dict[str, Any]] | None = None
    # (node, up): a node went down (rebooting, off) or came up / changed its config; the sandbox
    # mirrors it in the Kubernetes stand-in's Node objects
    on_node_state: Callable[[Node, bool], None] | None = None

    def pull_installer(self, ref: str) -> dict[str, Any]:
        if self.installers is None:
            raise LookupError("sandbox: no Image Factory to pull installer images from")
        return self.installers(ref)

    def node_state(self, node: Node, up: bool) -> None:
        if self.on_node_state is not None:
            self.on_node_state(node, up)

    def changed(self) -> None:
        if self.persist is not None:
            self.persist()

    def cluster(self, name: str) -> TalosSandboxCluster:
        return self.clusters.setdefault(name, TalosSandboxCluster(name))

    def node(self, address: str) -> Node | None:
        """The cluster member answering at `address` (or named so)."""
        for cluster in self.clusters.values():
            for node in cluster.nodes.values():
                if address in (node.address, node.hostname) or address in node.held_addresses():
                    return node
        return None
