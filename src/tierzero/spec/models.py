"""Spec v1: the one file a user writes (`tierzero.yaml`, apiVersion tierzero.dev/v1, kind Platform)."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from tierzero.spec.addons import (  # noqa: F401  (re-exported: the public surface of the spec)
    Addons,
    CertManager,
    ExternalDns,
    GrafanaAlloy,
    InfisicalWiring,
    IngressNginx,
    MetalLB,
    OciCcm,
    TailscaleOperator,
)
from tierzero.spec.base import DHCP, AddressOrDhcp, Model, Name  # noqa: F401
from tierzero.spec.cloud import OCI, A1Instance, BlockVolume, Budget, Cloud, MicroInstance, ReservedIP  # noqa: F401
from tierzero.spec.clusters import Cluster, ClusterNetwork, GitOps, Node, Patches, Role  # noqa: F401
from tierzero.spec.hypervisors import SSH, Ceph, Hypervisors, Proxmox, ProxmoxNode, ProxmoxPort, QDevice, Tailscale  # noqa: F401
from tierzero.spec.services import Infisical, Service
from tierzero.spec.shared_state import SharedState

__all__ = [
    "API_VERSION", "KIND", "DHCP", "OCI", "SSH", "A1Instance", "AddressOrDhcp", "Addons", "BlockVolume", "Budget", "Ceph", "CertManager",
    "Cloud", "Cluster", "ClusterNetwork", "ExternalDns", "GitOps", "GrafanaAlloy", "Hypervisors", "Infisical", "InfisicalWiring",
    "IngressNginx", "Metadata", "MetalLB", "MicroInstance", "Model", "Name", "Node", "OciCcm", "Patches", "Platform", "Proxmox",
    "ProxmoxNode", "ProxmoxPort", "QDevice", "ReservedIP", "Role", "Service", "SharedState", "Tailscale", "TailscaleOperator",
]

API_VERSION = "tierzero.dev/v1"
KIND = "Platform"


class Metadata(Model):
    name: Name


class Platform(Model):
    """The whole platform: cloud, hypervisors, clusters and services."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, title="tierzero Platform (tierzero.dev/v1)")

    api_version: Literal["tierzero.dev/v1"] = Field(alias="apiVersion")
    kind: Literal["Platform"]
    metadata: Metadata
    cloud: Cloud | None = Field(default=None, description="omit for your own Proxmox hosts")
    hypervisors: Hypervisors | None = Field(default=None, description="omit when every cluster runs on A1 instances directly")
    clusters: list[Cluster] = Field(default_factory=list)
    services: list[Service] = Field(default_factory=list)
    shared_state: SharedState | None = Field(default=None, description=(
        "keep the workspace state, the OpenTofu state and the run lock in an S3-compatible bucket (for a team or CI); "
        "omit to keep them in .tierzero/"))

    @property
    def oci(self) -> OCI | None:
        return self.cloud.oci if self.cloud else None

    @property
    def proxmox(self) -> Proxmox:
        """hypervisors.proxmox; LookupError for a spec without Proxmox hosts (check `has_proxmox` first)."""
        if self.hypervisors is None:
            raise LookupError("the spec has no hypervisors.proxmox")
        return self.hypervisors.proxmox

    @property
    def has_proxmox(self) -> bool:
        return self.hypervisors is not None

    def talos_instances(self) -> list[tuple[Cluster, Node, A1Instance]]:
        """The A1 instances that run Talos directly, with their cluster and node (the oci-talos design)."""
        a1 = {i.name: i for i in self.oci.a1_instances} if self.oci else {}
        return [(c, n, a1[n.instance]) for c in self.clusters for _, n in c.nodes() if n.instance and n.instance in a1]

    def cluster(self, name: str) -> Cluster:
        """The cluster named `name`; KeyError when the spec has none."""
        for cluster in self.clusters:
            if cluster.name == name:
                return cluster
        raise KeyError(f"no clusters[] entry named {name!r}")

    def host_memory_gb(self, node: ProxmoxNode) -> float | None:
        """Memory of a Proxmox host: its cloud instance's, or the explicit host's."""
        if node.memory_gb is not None:
            return node.memory_gb
        if node.instance and self.oci:
            for inst in self.oci.a1_instances:
                if inst.name == node.instance:
                    return float(inst.memory_gb)
        return None

    def host_cores(self, node: ProxmoxNode) -> int | None:
        if node.cores is not None:
            return node.cores
        if node.instance and self.oci:
            for inst in self.oci.a1_instances:
                if inst.name == node.instance:
                    return inst.ocpus
        return None

    def infisical_services(self) -> list[Infisical]:
        return [s for s in self.services if s.kind == "infisical"]
