"""The spec's clusters as Talos machine configs: one per node, from a bundle made once per cluster.

The secrets bundle, talosconfig and admin kubeconfig are generated on first use and kept
SOPS-encrypted in the workspace secret store; every later run reuses them, so configs rendered
twice are identical and a resumed deploy never changes a cluster's identity.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from typing import TYPE_CHECKING, Iterator, Mapping
from urllib.parse import urlparse

from tierzero.render.load_balancers import exclude_label_decision, remove_exclude_label_patch
from tierzero.render.talos.node import ClusterInputs, NodeInputs, render_node_config
from tierzero.render.talos.schematic import Schematic, disk_image_url, installer_image
from tierzero.render.talos.secrets import SecretsBundle, bundle_from_dict, generate_bundle

if TYPE_CHECKING:
    from tierzero.engine.step import SecretStore
    from tierzero.spec.clusters import Cluster, Node, Patch
    from tierzero.spec.models import Platform

INTERFACE = "eth0"  # the NIC's name on nocloud (net.ifnames=0); configs select it by MAC instead
PROXMOX_OUI = "BC:24:11"  # the MAC prefix Proxmox VE gives new NICs (datacenter.cfg mac_prefix default)


def secret_name(cluster: "Cluster", what: str) -> str:
    return f"talos/{cluster.name}/{what}"


def secrets_bundle(secrets: "SecretStore", cluster: "Cluster") -> SecretsBundle:
    text = secrets.get_or_create(secret_name(cluster, "secrets.yaml"), lambda: generate_bundle().to_yaml())
    return _parsed_bundle(text, cluster.name)


@lru_cache(maxsize=16)
def _parsed_bundle(text: str, cluster: str) -> SecretsBundle:
    """The bundle parsed once per distinct text (a plan renders every node of a cluster from it).
    Callers only read it."""
    from tierzero.render.talos import yamlio

    return bundle_from_dict(yamlio.load(text), source=f"secrets bundle of cluster {cluster}")


def schematic(cluster: "Cluster") -> Schematic:
    return Schematic(official_extensions=tuple(sorted(cluster.extensions)))


def image_urls(cluster: "Cluster", factory: str | None = None, schematic_id: str | None = None) -> dict[str, str]:
    """The Image Factory installer and the nocloud disk image (qcow2, which Proxmox's `import`
    content accepts as downloaded) for the cluster's arch and extensions. `factory` is the base URL
    to fetch from (default the cluster's `image_factory`), `schematic_id` the ID the factory
    returned (default the one computed offline)."""
    sid = schematic_id or schematic(cluster).id
    base = factory or cluster.image_factory
    platform = talos_platform(cluster)
    return {
        "schematic": sid,
        "installer": installer_image(sid, cluster.talos_version, platform=platform, host=factory_host(cluster)),
        "disk_image": disk_image_url(sid, cluster.talos_version, cluster.arch, platform=platform, fmt="qcow2", base=base),
    }


def talos_platform(cluster: "Cluster") -> str:
    """The Talos platform the cluster's nodes boot: `oracle` on A1 instances (machine config from the instance
    metadata), `nocloud` on Proxmox VMs (from the NoCloud drive)."""
    return "oracle" if cluster.on_instances else "nocloud"


def factory_host(cluster: "Cluster") -> str:
    """The registry host of the cluster's Image Factory (its installer images live there)."""
    return urlparse(cluster.image_factory).netloc


def node_mac(cluster: "Cluster", node: "Node") -> str:
    """The node's MAC: the spec's, else one derived from the cluster and node names in Proxmox's
    prefix, so the VM's NIC and the machine config that selects it agree on every run."""
    if node.mac:
        return str(node.mac).upper()
    digest = hashlib.sha256(f"{cluster.name}/{node.name}".encode()).digest()
    return PROXMOX_OUI + "".join(f":{b:02X}" for b in digest[:3])


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


def cluster_inputs(platform: "Platform", cluster: "Cluster", bundle: SecretsBundle, files: Mapping[str, bytes] | None = None,
                   extra_sans: tuple[str, ...] = ()) -> ClusterInputs:
    """`files`: the spec's referenced files (`LoadedSpec.files`), for `@file` patches. `extra_sans`: addresses
    known only once the cloud layer ran (the network load balancer in front of the control planes on A1
    instances): both APIs' certificates must name them (machine.certSANs, cluster.apiServer.certSANs), or
    clients reaching them that way fail TLS verification."""
    # On OCI the oracle platform takes DNS (and NTP) from the instance metadata service: 169.254.169.254
    # (siderolabs/talos platform/oracle/oracle.go).
    nameservers = () if cluster.on_instances else tuple(platform.proxmox.nameservers)
    sans = [cluster.vip] if cluster.vip else []
    host = urlparse(cluster.endpoint).hostname
    if host and host not in sans:
        sans.append(host)
    sans += [san for san in extra_sans if san not in sans]
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
        nameservers=nameservers,
        allow_scheduling_on_control_planes=cluster.allow_scheduling_on_control_planes,
        cilium_ready=cluster.cni == "cilium",
        patches=tuple(_patch_text(p) for p in cluster.patches.cluster),
        files=dict(files or {}),
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
        if cluster.etcd_backups.schedule is not None:  # the scheduled backup's pods call the Talos API (render/gitops/talos_backup.py)
            from tierzero.render.gitops.talos_backup import talos_api_access_patch
            from tierzero.render.talos.contract import Contract

            access = talos_api_access_patch(cluster.etcd_backups.namespace, Contract.parse(cluster.talos_contract).multidoc_kubernetes)
            patches.insert(0, json.dumps(access, sort_keys=True))
    patches += [_patch_text(p) for p in node.patches]
    ccm = cluster.addons.oci_ccm
    if node.instance is not None and ccm is not None and ccm.enabled:
        # kubelet --cloud-provider=external, so the OCI cloud controller manager initialises the nodes
        # (Talos v1alpha1 cluster.externalCloudProvider; oracle/oci-cloud-controller-manager README).
        patches.insert(0, json.dumps({"cluster": {"externalCloudProvider": {"enabled": True}}}, sort_keys=True))
    if node.instance is not None:
        # An A1 instance: its VNIC's private IP is fixed by OpenTofu and served by the VCN's DHCP; the
        # oracle platform configures eth0 from the metadata service, so the config names no address or MAC.
        return NodeInputs(hostname=node.name, role=role, install_disk=cluster.install_disk,  # type: ignore[arg-type]
                          interface=INTERFACE, patches=tuple(patches))
    address = None if node.ip.interface is None else str(node.ip.interface)
    return NodeInputs(
        hostname=node.name,
        role=role,  # type: ignore[arg-type]
        install_disk=cluster.install_disk,
        interface=INTERFACE,
        hardware_addr=node_mac(cluster, node),
        address=address,
        gateway=platform.proxmox.gateway if address else None,
        vip=cluster.vip if role == "controlplane" else None,
        patches=tuple(patches),
    )


def load_balancer_sans(cluster: "Cluster", addresses: Mapping[str, str] | None) -> tuple[str, ...]:
    """The certificate names a cluster on A1 instances needs beyond the spec's: the public address of its
    network load balancer (`addresses`: cluster -> address, the cloud layer's `network_load_balancers`).
    Empty for other clusters, or before the load balancer exists."""
    address = (addresses or {}).get(cluster.name) if cluster.on_instances else None
    return (str(address),) if address else ()


def machine_config(platform: "Platform", cluster: "Cluster", node_name: str, secrets: "SecretStore", files: Mapping[str, bytes] | None = None,
                   extra_sans: tuple[str, ...] = ()) -> str:
    """The machine config of one node (plaintext: it holds the cluster's keys; never log it).
    `files`: the spec's referenced files (`LoadedSpec.files`), for `@file` patches."""
    bundle = secrets_bundle(secrets, cluster)
    role, node = cluster.node_and_role(node_name)
    return render_node_config(cluster_inputs(platform, cluster, bundle, files, extra_sans), node_inputs(platform, cluster, role, node))


def cluster_configs(platform: "Platform", cluster: "Cluster", secrets: "SecretStore", files: Mapping[str, bytes] | None = None) -> Iterator[tuple[str, str]]:
    """(node name, machine config) for every node of the cluster, in spec order, one at a time; the
    bundle and the settings every node shares are worked out once. The same text `machine_config` gives."""
    common = cluster_inputs(platform, cluster, secrets_bundle(secrets, cluster), files)
    for role, node in cluster.nodes():
        yield node.name, render_node_config(common, node_inputs(platform, cluster, role, node))


def node_address(node: "Node") -> str | None:
    return None if node.ip.address is None else str(node.ip.address)


def talosconfig(cluster: "Cluster", secrets: "SecretStore") -> str:
    """The cluster's talosconfig: the admin certificate made once (kept in the secret store), and
    the control planes' own addresses as endpoints and nodes, never the VIP (it only exists while
    etcd is healthy, when talosctl is least needed). Source: Talos docs "Virtual (shared) IP",
    caveats ("Don't use the VIP as the endpoint in the talosconfig")."""
    import yaml

    from tierzero.render.talos import yamlio

    def make() -> str:  # only when the store lacks it: the client module imports cryptography's x509
        from tierzero.render.talos.client import talosconfig as new

        return new(secrets_bundle(secrets, cluster), cluster.name, cps, cps)

    cps = [a for a in (node_address(n) for n in cluster.control_planes) if a]
    stored = secrets.get_or_create(secret_name(cluster, "talosconfig"), make)
    doc = yaml.safe_load(stored)
    entry = doc["contexts"][doc["context"]]
    if entry.get("endpoints") == cps and entry.get("nodes", cps) == cps:
        return stored
    entry["endpoints"], entry["nodes"] = list(cps), list(cps)  # a workspace from before: its endpoints were the VIP
    return yamlio.dump_document({"context": doc["context"], "contexts": {doc["context"]: {k: entry[k] for k in ("endpoints", "nodes", "ca", "crt", "key") if k in entry}}})


def ensure_talosconfig(cluster: "Cluster", secrets: "SecretStore") -> None:
    """Make the cluster's talosconfig unless the store already holds it: a store that can tell
    (`exists(name)`, as the workspace's does) is not made to decrypt it just to say so."""
    exists = getattr(secrets, "exists", None)
    if callable(exists) and exists(secret_name(cluster, "talosconfig")):
        return
    talosconfig(cluster, secrets)


def kubeconfig(cluster: "Cluster", secrets: "SecretStore") -> str:
    from tierzero.render.talos.client import admin_kubeconfig

    return secrets.get_or_create(
        secret_name(cluster, "kubeconfig"),
        lambda: admin_kubeconfig(secrets_bundle(secrets, cluster), cluster.name, cluster.endpoint),
    )
