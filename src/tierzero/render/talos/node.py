"""Per-node machine configs for tierzero clusters: the entry point the spec layer calls."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tierzero.errors import InputError
from tierzero.render.talos import yamlio
from tierzero.render.talos.documents import doc
from tierzero.render.talos.generate import base_documents
from tierzero.render.talos.options import DEFAULT_POD_SUBNETS, DEFAULT_SERVICE_SUBNETS, GenerateOptions, Role
from tierzero.render.talos.patches import Patch, apply_patches, load_patches
from tierzero.render.talos.secrets import SecretsBundle
from tierzero.render.talos.yamlio import Document


@dataclass(frozen=True)
class ClusterInputs:
    """Settings shared by every node of one cluster."""

    name: str
    endpoint: str  # https URL of the Kubernetes API, e.g. the control-plane VIP on :6443
    talos_version: str  # contract ("v1.14") or release ("v1.14.2")
    kubernetes_version: str
    secrets: SecretsBundle
    installer_image: str = ""
    dns_domain: str = "cluster.local"
    pod_subnets: tuple[str, ...] = DEFAULT_POD_SUBNETS
    service_subnets: tuple[str, ...] = DEFAULT_SERVICE_SUBNETS
    additional_sans: tuple[str, ...] = ()
    nameservers: tuple[str, ...] = ()
    registry_mirrors: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    allow_scheduling_on_control_planes: bool = False
    cilium_ready: bool = True  # no built-in CNI, no kube-proxy: Cilium replaces both
    patches: tuple[str, ...] = ()  # inline YAML/JSON or @file, applied to every node
    files: Mapping[str, bytes] = field(default_factory=dict)  # bytes of each @file patch, by the name after @


LINK_ALIAS = "net0"  # the name the MAC-selected link gets (LinkAliasConfig, contract >= v1.12)
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


@dataclass(frozen=True)
class NodeInputs:
    """One machine. Without `address` the link uses DHCP. The link is the one with MAC
    `hardware_addr` when given (Talos compares lower-case hex, so it is lower-cased here),
    else the one named `interface`.

    Selecting by MAC: contract v1.11 writes a v1alpha1 `deviceSelector: {hardwareAddr, physical:
    true}`; v1.12+ a `LinkAliasConfig` whose CEL selector is `mac(link.permanent_addr) == "<mac>"`
    and names the link `net0` for `LinkConfig`, `DHCPv4Config` and `Layer2VIPConfig` (the official
    schemas of v1.12+ drop `machine.network.interfaces`). Sources: siderolabs/talos v1.12.11
    internal/app/machined/pkg/controllers/network/device_config.go (glob on
    net.HardwareAddr.String(), lower case); pkg/machinery/config/types/network/link_alias.go;
    Talos docs v1.12 networking/configuration/aliases."""

    hostname: str
    role: Role
    install_disk: str = "/dev/sda"
    interface: str = "eth0"
    hardware_addr: str | None = None  # the NIC's MAC, e.g. BC:24:11:00:00:11
    address: str | None = None  # CIDR, e.g. 192.168.1.11/24
    gateway: str | None = None
    vip: str | None = None  # shared control-plane address (layer 2)
    installer_image: str | None = None  # overrides ClusterInputs.installer_image
    patches: tuple[str, ...] = ()


def render_node_config(common: ClusterInputs, node: NodeInputs) -> str:
    """The machine config (a YAML stream) for one node; same inputs and bundle give the same text."""
    return yamlio.dump_stream(node_documents(common, node))


def node_documents(common: ClusterInputs, node: NodeInputs) -> list[Document]:
    _check_node(node)
    opts = GenerateOptions(
        cluster_name=common.name,
        endpoint=common.endpoint,
        kubernetes_version=common.kubernetes_version,
        talos_contract=common.talos_version,
        secrets=common.secrets,
        additional_sans=list(common.additional_sans),
        dns_domain=common.dns_domain,
        install_disk=node.install_disk,
        install_image=node.installer_image or common.installer_image,
        registry_mirrors={host: list(eps) for host, eps in common.registry_mirrors.items()},
        allow_scheduling_on_control_planes=common.allow_scheduling_on_control_planes,
        pod_subnets=list(common.pod_subnets),
        service_subnets=list(common.service_subnets),
    )
    opts.check()
    docs, _ = base_documents(opts, common.secrets, node.role)
    generated: list[Patch] = [Patch("node network", documents=tuple(_network_patch(opts, common, node)))]
    if common.cilium_ready:
        generated.append(Patch("cilium-ready settings", documents=tuple(_cilium_patch(opts, docs))))
    user = load_patches([*common.patches, *node.patches], common.files)
    return apply_patches(docs, [*generated, *user])


def _check_node(node: NodeInputs) -> None:
    if node.role not in ("controlplane", "worker"):
        raise InputError(f"node {node.hostname}: role must be controlplane or worker, not {node.role!r}")
    if node.vip and node.role != "controlplane":
        raise InputError(f"node {node.hostname}: only control-plane nodes carry the VIP")
    if node.hardware_addr is not None and not _MAC.match(node.hardware_addr.lower()):
        raise InputError(f"node {node.hostname}: invalid MAC address {node.hardware_addr!r}", hint="use six hex pairs like BC:24:11:00:00:11")
    if node.address:
        try:
            interface = ipaddress.ip_interface(node.address)
        except ValueError as exc:
            raise InputError(f"node {node.hostname}: invalid address {node.address!r}: {exc}") from exc
        if interface.network.prefixlen == interface.max_prefixlen:
            raise InputError(f"node {node.hostname}: address {node.address} needs a prefix length, e.g. /24")
    for label, value in (("gateway", node.gateway), ("VIP", node.vip)):
        if value:
            try:
                ipaddress.ip_address(value)
            except ValueError as exc:
                raise InputError(f"node {node.hostname}: invalid {label} {value!r}") from exc


def _network_patch(opts: GenerateOptions, common: ClusterInputs, node: NodeInputs) -> list[Document]:
    mac = node.hardware_addr.lower() if node.hardware_addr else None
    if not opts.contract.multidoc_network:
        interface: dict[str, Any] = {"deviceSelector": {"hardwareAddr": mac, "physical": True}} if mac else {"interface": node.interface}
        if node.address:
            interface["addresses"] = [node.address]
            if node.gateway:
                interface["routes"] = [{"network": "0.0.0.0/0", "gateway": node.gateway}]
        else:
            interface["dhcp"] = True
        if node.vip:
            interface["vip"] = {"ip": node.vip}
        network: dict[str, Any] = {"hostname": node.hostname, "interfaces": [interface]}
        if common.nameservers:
            network["nameservers"] = list(common.nameservers)
        return [{"machine": {"network": network}}]
    patch: list[Document] = [doc("HostnameConfig", auto={"$patch": "delete"}, hostname=node.hostname)]
    link_name = node.interface
    if mac:
        link_name = LINK_ALIAS
        patch.append(doc("LinkAliasConfig", name=LINK_ALIAS, selector={"match": f'mac(link.permanent_addr) == "{mac}"'}))
    if node.address:
        link = doc("LinkConfig", name=link_name, addresses=[{"address": node.address}])
        if node.gateway:
            link["routes"] = [{"gateway": node.gateway}]
        patch.append(link)
    else:
        patch.append(doc("DHCPv4Config", name=link_name))
    if node.vip:
        patch.append(doc("Layer2VIPConfig", name=node.vip, link=link_name))
    if common.nameservers:
        patch.append(doc("ResolverConfig", nameservers=[{"address": ns} for ns in common.nameservers]))
    return patch


def _cilium_patch(opts: GenerateOptions, docs: list[Document]) -> list[Document]:
    if not opts.contract.multidoc_kubernetes:
        return [{"cluster": {"network": {"cni": {"name": "none"}}, "proxy": {"disabled": True}}}]
    patch: list[Document] = [doc("KubeFlannelCNIConfig", **{"$patch": "delete"})]
    if any(d.get("kind") == "KubeProxyConfig" for d in docs):
        patch.append(doc("KubeProxyConfig", enabled=False))
    return patch
