"""Pinned versions: the Flux and Argo CD installs, Cilium, and one chart per add-on.

A spec add-on's `version` overrides its chart version (or the Git tag of a Git source).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

FLUX_VERSION = "v2.8.6"
ARGOCD_VERSION = "v3.2.0"
CILIUM_VERSION = "1.19.0"
CILIUM_CLI_VERSION = "v0.19.0"
CILIUM_CLI_IMAGE = f"quay.io/cilium/cilium-cli:{CILIUM_CLI_VERSION}"


@dataclass(frozen=True)
class HelmChart:
    chart: str
    repo: str  # https://... (HelmRepository) or oci://registry/path/chart (OCIRepository)
    version: str

    @property
    def is_oci(self) -> bool:
        return self.repo.startswith("oci://")


@dataclass(frozen=True)
class GitSource:
    url: str
    tag: str
    path: str


CHARTS: dict[str, HelmChart] = {
    "cert_manager": HelmChart("cert-manager", "oci://quay.io/jetstack/charts/cert-manager", "v1.19.1"),
    "tailscale_operator": HelmChart("tailscale-operator", "https://pkgs.tailscale.com/helmcharts", "1.88.2"),
    "grafana_alloy": HelmChart("alloy", "https://grafana.github.io/helm-charts", "1.4.0"),
    "metallb": HelmChart("metallb", "https://metallb.github.io/metallb", "0.15.2"),
    "external_dns": HelmChart("external-dns", "https://kubernetes-sigs.github.io/external-dns/", "1.19.0"),
    "ingress_nginx": HelmChart("ingress-nginx", "https://kubernetes.github.io/ingress-nginx", "4.13.3"),
    "external_secrets": HelmChart("external-secrets", "https://charts.external-secrets.io", "0.20.4"),
    "infisical_operator": HelmChart("secrets-operator", "https://dl.cloudsmith.io/public/infisical/helm-charts/helm/charts/", "0.11.7"),
}

GIT_SOURCES: dict[str, GitSource] = {
    # Oracle publishes the CCM as plain manifests, not as a chart.
    "oci_ccm": GitSource("https://github.com/oracle/oci-cloud-controller-manager", "v1.33.0", "manifests/cloud-controller-manager"),
    # The block-volume CSI driver ships in the same repository and release (docs/container-storage-interface.md).
    "oci_csi": GitSource("https://github.com/oracle/oci-cloud-controller-manager", "v1.33.0", "manifests/container-storage-interface"),
}


def chart(key: str, override: str | None = None) -> HelmChart:
    base = CHARTS[key]
    return HelmChart(base.chart, base.repo, override or base.version)


def git_source(key: str, override: str | None = None) -> GitSource:
    base = GIT_SOURCES[key]
    return GitSource(base.url, override or base.tag, base.path)


@dataclass(frozen=True)
class FluxComponents:
    """`gotk-components.yaml` of one Flux version as `flux install --export` writes it with the
    default options: what `flux bootstrap` commits under flux-system/. A dated fact: its size
    and sha256 are how tierzero knows a copy is the real thing, whichever source gave it."""

    version: str
    size: int  # bytes
    sha256: str
    controllers: Mapping[str, str] = field(default_factory=dict)
    checked: str = ""  # how and when the digest was established

    @property
    def components(self) -> tuple[str, ...]:
        return tuple(self.controllers)


FLUX_COMPONENTS: dict[str, FluxComponents] = {
    "v2.8.6": FluxComponents(
        "v2.8.6", 282_465, "4cef93f6f505717bf7a9355f247ddf4ae32697442527d10eb0072d665071ad53",
        # flux2 manifests/bases/*/kustomization.yaml @ v2.8.6
        {"source-controller": "v1.8.3", "kustomize-controller": "v1.8.4", "helm-controller": "v1.5.4", "notification-controller": "v1.8.4"},
        checked="2026-12-01: rebuilt offline from the upstream recipe (flux2 pkg/manifestgen/install and manifests/bases @ v2.8.6 over the "
                "controllers' config/ at their pinned tags); the same method reproduced committed `flux bootstrap` outputs of v2.7.2, "
                "v2.7.5 and v2.8.5 byte for byte. Not yet compared with a real flux v2.8.6 CLI: re-check with `flux install --export | sha256sum`."),
}
FLUX_CLI_RELEASE = "https://github.com/fluxcd/flux2/releases/download/{version}/"  # flux2 .goreleaser.yml: archives and checksums


def flux_components(version: str = FLUX_VERSION) -> FluxComponents:
    return FLUX_COMPONENTS[version]


def argocd_install_url(version: str = ARGOCD_VERSION) -> str:
    return f"https://raw.githubusercontent.com/argoproj/argo-cd/{version}/manifests/install.yaml"
