"""The typed documents talosctl appends after v1alpha1 (HostnameConfig from v1.12, Kube*Config from v1.14)."""

from __future__ import annotations

import json
from typing import Any

from tierzero.render.talos import legacy
from tierzero.render.talos.options import GenerateOptions, Role
from tierzero.render.talos.secrets import SecretsBundle
from tierzero.render.talos.yamlio import Document

DISCOVERY_ENDPOINT = "https://discovery.talos.dev/"
TRIM_INTERVAL = "168h0m0s"
LABEL_CONTROL_PLANE = "node-role.kubernetes.io/control-plane"
FLANNEL_BACKEND = {"backendType": "vxlan", "backendPort": 4789}
# talosctl names the secretbox key this way in the etcd encryption configuration.
SECRETBOX_KEY_NAME = "key2"
CUSTOM_CNI_NAME = "custom-cni"


def doc(kind: str, **fields: Any) -> Document:
    return {"apiVersion": "v1alpha1", "kind": kind, **fields}


def extra_documents(opts: GenerateOptions, bundle: SecretsBundle, role: Role) -> tuple[list[Document], list[str]]:
    """Documents after v1alpha1, in talosctl's order, and warnings for options this contract drops."""
    contract = opts.contract
    docs: list[Document] = []
    warnings: list[str] = []
    if contract.multidoc_kubernetes:
        docs += _machine_documents(opts, bundle)
        if opts.install_extra_kernel_args:
            warnings.append(
                f"Talos {contract} has no install-time kernel arguments; --install-extra-kernel-args is ignored "
                "(bake them into an Image Factory schematic instead)"
            )
        if opts.install_image and not opts.install_disk:
            warnings.append(f"Talos {contract} writes the installer image only together with an install disk")
    if contract.multidoc_network:
        docs += _registry_documents(opts)
        docs.append(doc("HostnameConfig", auto="stable"))
    if contract.multidoc_kubernetes:
        docs += _kubernetes_documents(opts, bundle, role)
        if role == "controlplane":
            docs += _controlplane_documents(opts, bundle)
    return docs, warnings


def _machine_documents(opts: GenerateOptions, bundle: SecretsBundle) -> list[Document]:
    docs = [
        doc("DiscoveryServiceConfig", name="default", endpoint=DISCOVERY_ENDPOINT),
        doc("DiscoveryIdentityConfig", clusterID=bundle.cluster_id, clusterSecret=bundle.cluster_secret),
    ]
    if opts.install_disk:
        # Talos writes `installer: {}` when no image is given (the field is not omitempty); the
        # disk selector is a CEL expression on the device path (generate/init.go, unattendedInstallConfig).
        installer = {"image": opts.install_image} if opts.install_image else {}
        docs.append(
            doc(
                "UnattendedInstallConfig",
                installer=installer,
                provisioning={"diskSelector": {"match": f"disk.dev_path == {json.dumps(opts.install_disk)}"}, "wipe": False},
            )
        )
    docs.append(doc("ResolverConfig", hostDNS={"enabled": True, "forwardKubeDNSToHost": True}))
    if opts.sysctls:
        docs.append(doc("SysctlConfig", params=dict(opts.sysctls)))
    docs += [
        doc("VolumeConfig", name="EPHEMERAL", mount={"secure": True}),
        doc("FilesystemTrimConfig", interval=TRIM_INTERVAL),
        doc("SecurityProfileConfig", workloadIsolation=True),
    ]
    return docs


def _registry_documents(opts: GenerateOptions) -> list[Document]:
    return [
        doc("RegistryMirrorConfig", name=host, endpoints=[{"url": url} for url in opts.registry_mirrors[host]])
        for host in sorted(opts.registry_mirrors)
    ]


def _kubernetes_documents(opts: GenerateOptions, bundle: SecretsBundle, role: Role) -> list[Document]:
    node: Document = doc("KubeNodeConfig", nodeIP={})
    k8s_ca_crt = (bundle.k8s_ca.crt or b"").decode()
    if role == "controlplane":
        node["labels"] = {LABEL_CONTROL_PLANE: "", legacy.LABEL_EXCLUDE_FROM_LB: ""}
        if not opts.allow_scheduling_on_control_planes:
            node["taints"] = {LABEL_CONTROL_PLANE: "NoSchedule"}
        api_ca = doc("KubeAPIServerCAConfig", issuingCA={"cert": k8s_ca_crt, "key": bundle.k8s_ca.key.decode()})
    else:
        api_ca = doc("KubeAPIServerCAConfig", acceptedCAs=[k8s_ca_crt])
    return [
        doc("KubeClusterConfig", clusterName=opts.cluster_name, endpoint=opts.endpoint),
        node,
        doc(
            "KubeletConfig",
            image=legacy.image(legacy.KUBELET_IMAGE, opts),
            config={},
            defaultRuntimeSeccompProfileEnabled=True,
        ),
        doc(
            "KubeNetworkConfig",
            dnsDomain=opts.dns_domain,
            podSubnets=list(opts.pod_subnets),
            serviceSubnets=list(opts.service_subnets),
        ),
        api_ca,
        doc("KubePrismConfig", port=legacy.KUBEPRISM_PORT),
    ]


def _controlplane_documents(opts: GenerateOptions, bundle: SecretsBundle) -> list[Document]:
    aggregator = bundle.aggregator_ca
    api_server = doc("KubeAPIServerConfig", image=legacy.image(legacy.APISERVER_IMAGE, opts))
    if opts.local_api_server_port:
        api_server["apiPort"] = opts.local_api_server_port
    sans = legacy.apiserver_extra_sans(opts)
    if sans:
        api_server["certExtraSANs"] = sans
    docs = [
        doc("KubeAggregatorCAConfig", issuingCA={"cert": (aggregator.crt or b"").decode(), "key": aggregator.key.decode()}),
        doc("KubeAdmissionControlConfig", name="PodSecurity", configuration=legacy.pod_security_admission()),
        doc("KubeAuditPolicyConfig", configuration=legacy.audit_policy()),
        doc("KubeAuthenticationConfig", configuration=_anonymous_health_auth()),
        doc("KubeAuthorizerConfig", name="node", type="Node"),
        doc("KubeAuthorizerConfig", name="rbac", type="RBAC"),
        doc("KubeEtcdEncryptionConfig", config=_etcd_encryption(bundle.secretbox_secret)),
        doc(
            "KubeServiceAccountConfig",
            issuer={"privateKey": bundle.service_account_key.decode(), "issuerURL": opts.endpoint},
        ),
        api_server,
        doc("KubeControllerManagerConfig", image=legacy.image(legacy.CONTROLLER_MANAGER_IMAGE, opts)),
        doc("KubeSchedulerConfig", image=legacy.image(legacy.SCHEDULER_IMAGE, opts), config={}),
        doc("KubeProxyConfig", image=legacy.image(legacy.PROXY_IMAGE, opts), config={}),
    ]
    if not opts.cni_urls:
        docs.append(doc("KubeFlannelCNIConfig", **FLANNEL_BACKEND))
    docs.append(doc("KubeCoreDNSConfig", enabled=True))
    docs += [doc("KubeExternalManifestConfig", name=name, url=url) for name, url in external_cni_manifests(opts.cni_urls)]
    return docs


def external_cni_manifests(urls: list[str]) -> list[tuple[str, str]]:
    """(document name, URL) per custom CNI manifest. talosctl takes one URL and names its document
    `custom-cni`, after KubeCoreDNSConfig (generate/kubernetes.go, generateKubernetesControlplaneConfigs);
    further URLs, which only tierzero accepts, are `custom-cni-2`, `custom-cni-3`, …"""
    return [(CUSTOM_CNI_NAME if i == 0 else f"{CUSTOM_CNI_NAME}-{i + 1}", url) for i, url in enumerate(urls)]


def _anonymous_health_auth() -> dict[str, Any]:
    return {
        "anonymous": {
            "conditions": [{"path": "/livez"}, {"path": "/readyz"}, {"path": "/healthz"}],
            "enabled": True,
        },
        "jwt": [],
    }


def _etcd_encryption(secret: str) -> dict[str, Any]:
    keys = [{"name": SECRETBOX_KEY_NAME, "secret": secret}]
    return {"resources": [{"providers": [{"secretbox": {"keys": keys}}], "resources": ["secrets"]}]}
