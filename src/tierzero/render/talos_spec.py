"""The spec's clusters as Talos machine configs: one per node, from a bundle made once per cluster.

The secrets bundle, talosconfig and admin kubeconfig are generated on first use and kept
SOPS-encrypted in the workspace secret store; every later run reuses them, so configs rendered
twice are identical and a resumed deploy never changes a cluster's identity.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from tierzero.render.load_balancers import exclude_label_decision, remove_exclude_label_patch
from tierzero.render.talos.node import ClusterInputs, NodeInputs, render_node_config
from tierzero.render.talos.schematic import Schematic, disk_image_url, installer_image
from tierzero.render.talos.secrets import SecretsBundle, bundle_from_dict, generate_bundle

if TYPE_CHECKING:
    from tierzero.engine.step import SecretStore
    from tierzero.spec.clusters import Cluster, Node, Patch
    from tierzero.spec.models import Platform

INTERFACE = "eth0"  # the first virtio NIC of a Proxmox VM


def secret_name(cluster: "Cluster", what: str) -> str:
    return f"talos/{cluster.name}/{what}"


def secrets_bundle(secrets: "SecretStore", cluster: "Cluster") -> SecretsBundle:
    import yaml

    text = secrets.get_or_create(secret_name(cluster, "secrets.yaml"), lambda: generate_bundle().to_yaml())
    return bundle_from_dict(yaml.safe_load(text), source=f"secrets bundle of cluster {cluster.name}")


def schematic(cluster: "Cluster") -> Schematic:
    return Schematic(official_extensions=tuple(sorted(cluster.extensions)))


def image_urls(cluster: "Cluster") -> dict[str, str]:
    """The Image Factory installer and the nocloud disk image for the cluster's arch and extensions."""
    sid = schematic(cluster).id
    return {
        "schematic": sid,
        "installer": installer_image(sid, cluster.talos_version, platform="nocloud"),
        "disk_image": disk_image_url(sid, cluster.talos_version, cluster.arch, platform="nocloud"),
    }


def _patch_text(patch: "Patch") -> str:
    return patch if isinstance(patch, str) else json.dumps(patch, sort_keys=True)


def _inline_manifest_patch(cluster: "Cluster") -> str | None:
    from tierzero.render.gitops.cilium import cilium_inline_manifests
    from tierzero.render.talos.contract import Contract

    manifests = cilium_inline_manifests(cluster)
    if not manifests:
        return None
    if Contract.parse(cluster.talos_contract).multidoc_kubernetes:
        docs = [{"apiVersion": "v1alpha1", "kind": "KubeInlineManifestConfig", "name": m["name"], "manifest": m["contents"]} for m in manifests]
        return "\n---\n".join(json.dumps(d, sort_keys=True) for d in docs)
    return json.dumps({"cluster": {"inlineManifests": manifests}}, sort_keys=True)


def cluster_inputs(platform: "Platform", cluster: "Cluster", bundle: SecretsBundle, base_dir: Path | None = None) -> ClusterInputs:
    px = platform.proxmox
    sans = [cluster.vip] if cluster.vip else []
    host = urlparse(cluster.endpoint).hostname
    if host and host not in sans:
        sans.append(host)
    return ClusterInputs(
        name=cluster.name,
        endpoint=cluster.endpoint,
        talos_version=cluster.talos_version,
        kubernetes_version=cluster.kubernetes_semver,
        secrets=bundle,
        installer_image=image_urls(cluster)["installer"],
        dns_domain=cluster.network.dns_domain,
        pod_subnets=(cluster.network.pod_cidr,),
        service_subnets=(cluster.network.service_cidr,),
        additional_sans=tuple(sans),
        nameservers=tuple(px.nameservers),
        allow_scheduling_on_control_planes=cluster.allow_scheduling_on_control_planes,
        cilium_ready=cluster.cni == "cilium",
        patches=tuple(_patch_text(p) for p in cluster.patches.cluster),
        patch_dir=base_dir,
    )


def node_inputs(platform: "Platform", cluster: "Cluster", role: str, node: "Node") -> NodeInputs:
    role_patches = cluster.patches.control_plane if role == "controlplane" else cluster.patches.worker
    patches = [_patch_text(p) for p in role_patches]
    if role == "controlplane":
        inline = _inline_manifest_patch(cluster)
        if inline:
            patches.insert(0, inline)
        if exclude_label_decision(cluster).remove_label:  # before the user's patches, which may set it again
            patches.insert(0, remove_exclude_label_patch(cluster.talos_version))
    patches += [_patch_text(p) for p in node.patches]
    address = None if node.ip.interface is None else str(node.ip.interface)
    return NodeInputs(
        hostname=node.name,
        role=role,  # type: ignore[arg-type]
        install_disk=cluster.install_disk,
        interface=INTERFACE,
        address=address,
        gateway=platform.proxmox.gateway if address else None,
        vip=cluster.vip if role == "controlplane" else None,
        patches=tuple(patches),
    )


def machine_config(platform: "Platform", cluster: "Cluster", node_name: str, secrets: "SecretStore", base_dir: Path | None = None) -> str:
    """The machine config of one node (plaintext: it holds the cluster's keys; never log it)."""
    bundle = secrets_bundle(secrets, cluster)
    role, node = cluster.node_and_role(node_name)
    return render_node_config(cluster_inputs(platform, cluster, bundle, base_dir), node_inputs(platform, cluster, role, node))


def node_address(node: "Node") -> str | None:
    return None if node.ip.address is None else str(node.ip.address)


def talosconfig(cluster: "Cluster", secrets: "SecretStore") -> str:
    from tierzero.render.talos.client import talosconfig as make

    def generate() -> str:
        bundle = secrets_bundle(secrets, cluster)
        cps = [a for a in (node_address(n) for n in cluster.control_planes) if a]
        endpoints = [cluster.vip] if cluster.vip else cps
        return make(bundle, cluster.name, endpoints or cps, cps)

    return secrets.get_or_create(secret_name(cluster, "talosconfig"), generate)


def kubeconfig(cluster: "Cluster", secrets: "SecretStore") -> str:
    from tierzero.render.talos.client import admin_kubeconfig

    return secrets.get_or_create(
        secret_name(cluster, "kubeconfig"),
        lambda: admin_kubeconfig(secrets_bundle(secrets, cluster), cluster.name, cluster.endpoint),
    )
