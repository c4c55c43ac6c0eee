"""What an add-on contributes to the tree, independent of the GitOps engine that applies it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tierzero.render.gitops.versions import GitSource, HelmChart

if TYPE_CHECKING:
    from tierzero.engine.step import SecretStore
    from tierzero.spec.models import Cluster, Platform

Manifest = dict[str, Any]


@dataclass(frozen=True)
class ConfigOnly:
    """Nothing to install: the component only adds configuration (its software is already there)."""


@dataclass
class RenderContext:
    platform: "Platform"
    cluster: "Cluster"
    secrets: "SecretStore"
    # Facts known only after the cloud is built (OCIDs from OpenTofu outputs), by name:
    # compartment_ocid, vcn_ocid, subnet_ocid. Missing facts are left out, never invented.
    facts: Mapping[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    recipient: str = ""  # the workspace's age recipient (what `.sops.yaml` and the scheduled etcd backups encrypt to)

    def enabled(self, key: str) -> bool:
        return key in self.cluster.addons.enabled()


@dataclass
class Component:
    """One installed thing: a Helm chart (or Git-sourced manifests) in a namespace, plus its
    Secrets and the custom resources that configure it once its CRDs exist."""

    name: str
    namespace: str
    source: HelmChart | GitSource | ConfigOnly
    values: dict[str, Any] = field(default_factory=dict)
    depends_on: tuple[str, ...] = ()
    create_namespace: bool = True
    namespace_labels: dict[str, str] = field(default_factory=dict)
    secrets: list[Manifest] = field(default_factory=list)  # applied with the controllers
    configs: list[Manifest] = field(default_factory=list)  # applied after every controller is ready
    config_secrets: list[Manifest] = field(default_factory=list)


PRIVILEGED = {
    "pod-security.kubernetes.io/enforce": "privileged",
    "pod-security.kubernetes.io/audit": "privileged",
    "pod-security.kubernetes.io/warn": "privileged",
}


def namespace(name: str, labels: Mapping[str, str] | None = None) -> Manifest:
    meta: dict[str, Any] = {"name": name}
    if labels:
        meta["labels"] = dict(sorted(labels.items()))
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}


def secret(name: str, ns: str, string_data: Mapping[str, str]) -> Manifest:
    """A Secret in plaintext form; the tree writer encrypts it before it leaves memory."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": ns},
        "type": "Opaque",
        "stringData": dict(sorted(string_data.items())),
    }
