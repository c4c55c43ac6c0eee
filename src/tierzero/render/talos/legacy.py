"""The v1alpha1 document: everything before v1.14, and what is left of it afterwards."""

from __future__ import annotations

import base64
from typing import Any

from tierzero.render.talos.options import GenerateOptions, Role
from tierzero.render.talos.pem import PemPair
from tierzero.render.talos.secrets import SecretsBundle

KUBELET_IMAGE = "ghcr.io/siderolabs/kubelet"
APISERVER_IMAGE = "registry.k8s.io/kube-apiserver"
CONTROLLER_MANAGER_IMAGE = "registry.k8s.io/kube-controller-manager"
SCHEDULER_IMAGE = "registry.k8s.io/kube-scheduler"
PROXY_IMAGE = "registry.k8s.io/kube-proxy"
KUBEPRISM_PORT = 7445
LABEL_EXCLUDE_FROM_LB = "node.kubernetes.io/exclude-from-external-load-balancers"


def pod_security_admission() -> dict[str, Any]:
    return {
        "apiVersion": "pod-security.admission.config.k8s.io/v1alpha1",
        "defaults": {
            "audit": "restricted",
            "audit-version": "latest",
            "enforce": "baseline",
            "enforce-version": "latest",
            "warn": "restricted",
            "warn-version": "latest",
        },
        "exemptions": {"namespaces": ["kube-system"], "runtimeClasses": [], "usernames": []},
        "kind": "PodSecurityConfiguration",
    }


def audit_policy() -> dict[str, Any]:
    return {"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": [{"level": "Metadata"}]}


def b64_pair(pair: PemPair, *, with_key: bool) -> dict[str, str]:
    crt = base64.b64encode(pair.crt or b"").decode()
    return {"crt": crt, "key": base64.b64encode(pair.key).decode() if with_key else ""}


def image(repo: str, opts: GenerateOptions) -> str:
    return f"{repo}:{opts.kubernetes_tag}"


def apiserver_extra_sans(opts: GenerateOptions) -> list[str]:
    """SANs for the API server beyond the endpoint host, which Talos ≥1.12 adds by itself."""
    if opts.contract.at_least(12):
        return [san for san in opts.additional_sans if san != opts.endpoint_host]
    return [opts.endpoint_host, *opts.additional_sans]


def v1alpha1_document(opts: GenerateOptions, bundle: SecretsBundle, role: Role) -> dict[str, Any]:
    return {
        "version": "v1alpha1",
        "debug": False,
        "persist": True,
        "machine": _machine(opts, bundle, role),
        "cluster": _cluster(opts, bundle, role),
    }


def _machine(opts: GenerateOptions, bundle: SecretsBundle, role: Role) -> dict[str, Any]:
    contract = opts.contract
    legacy_k8s = not contract.multidoc_kubernetes
    controlplane = role == "controlplane"
    machine: dict[str, Any] = {
        "type": role,
        "token": bundle.trustd_token,
        "ca": b64_pair(bundle.os_ca, with_key=controlplane),
        "certSANs": list(opts.additional_sans),
    }
    if legacy_k8s:
        machine["kubelet"] = {
            "image": image(KUBELET_IMAGE, opts),
            "defaultRuntimeSeccompProfileEnabled": True,
            "disableManifestsDirectory": True,
        }
        if contract.empty_machine_network:
            machine["network"] = {}
        machine["install"] = _install(opts)
        if opts.sysctls:
            machine["sysctls"] = dict(opts.sysctls)
        if opts.registry_mirrors and not contract.multidoc_network:
            machine["registries"] = {
                "mirrors": {host: {"endpoints": list(eps)} for host, eps in opts.registry_mirrors.items()}
            }
    machine["features"] = _features(opts)
    if controlplane and legacy_k8s:
        machine["nodeLabels"] = {LABEL_EXCLUDE_FROM_LB: ""}
    return machine


def _install(opts: GenerateOptions) -> dict[str, Any]:
    install: dict[str, Any] = {}
    if opts.install_disk:
        install["disk"] = opts.install_disk
    if opts.install_extra_kernel_args:
        install["extraKernelArgs"] = list(opts.install_extra_kernel_args)
    if opts.install_image:
        install["image"] = opts.install_image
    install["wipe"] = False
    if opts.contract.grub_uki_cmdline:
        install["grubUseUKICmdline"] = True
    return install


def _features(opts: GenerateOptions) -> dict[str, Any]:
    contract = opts.contract
    features: dict[str, Any] = {}
    if contract.legacy_feature_flags:
        features.update(rbac=True, stableHostname=True, apidCheckExtKeyUsage=True)
    features["diskQuotaSupport"] = True
    if not contract.multidoc_kubernetes:
        features["kubePrism"] = {"enabled": True, "port": KUBEPRISM_PORT}
        features["hostDNS"] = {"enabled": True, "forwardKubeDNSToHost": True}
    return features


def _cluster(opts: GenerateOptions, bundle: SecretsBundle, role: Role) -> dict[str, Any]:
    if opts.contract.multidoc_kubernetes:
        cluster: dict[str, Any] = {"token": bundle.bootstrap_token}
        if role == "controlplane":
            cluster["etcd"] = {"ca": b64_pair(bundle.etcd_ca, with_key=True)}
        return cluster
    controlplane = role == "controlplane"
    control_plane: dict[str, Any] = {"endpoint": opts.endpoint}
    if controlplane and opts.local_api_server_port:
        control_plane["localAPIServerPort"] = opts.local_api_server_port
    network: dict[str, Any] = {}
    if opts.cni_urls:
        network["cni"] = {"name": "custom", "urls": list(opts.cni_urls)}
    network.update(
        dnsDomain=opts.dns_domain, podSubnets=list(opts.pod_subnets), serviceSubnets=list(opts.service_subnets)
    )
    cluster = {
        "id": bundle.cluster_id,
        "secret": bundle.cluster_secret,
        "controlPlane": control_plane,
        "clusterName": opts.cluster_name,
        "network": network,
        "token": bundle.bootstrap_token,
    }
    if controlplane:
        cluster["secretboxEncryptionSecret"] = bundle.secretbox_secret
    cluster["ca"] = b64_pair(bundle.k8s_ca, with_key=controlplane)
    if controlplane:
        cluster.update(_controlplane_components(opts, bundle))
    cluster["discovery"] = {"enabled": True, "registries": {"kubernetes": {"disabled": True}, "service": {}}}
    if controlplane:
        cluster["etcd"] = {"ca": b64_pair(bundle.etcd_ca, with_key=True)}
        if opts.allow_scheduling_on_control_planes:
            cluster["allowSchedulingOnControlPlanes"] = True
    return cluster


def _controlplane_components(opts: GenerateOptions, bundle: SecretsBundle) -> dict[str, Any]:
    api_server: dict[str, Any] = {"image": image(APISERVER_IMAGE, opts)}
    sans = apiserver_extra_sans(opts)
    if sans:
        api_server["certSANs"] = sans
    if opts.contract.legacy_feature_flags:
        api_server["disablePodSecurityPolicy"] = True
    api_server["admissionControl"] = [{"name": "PodSecurity", "configuration": pod_security_admission()}]
    api_server["auditPolicy"] = audit_policy()
    return {
        "aggregatorCA": b64_pair(bundle.aggregator_ca, with_key=True),
        "serviceAccount": {"key": base64.b64encode(bundle.service_account_key).decode()},
        "apiServer": api_server,
        "controllerManager": {"image": image(CONTROLLER_MANAGER_IMAGE, opts)},
        "proxy": {"image": image(PROXY_IMAGE, opts)},
        "scheduler": {"image": image(SCHEDULER_IMAGE, opts)},
    }
