"""Pinned versions: the Flux and Argo CD installs, Cilium, and one chart per add-on.

A spec add-on's `version` overrides its chart version (or the Git tag of a Git source).
"""

from __future__ import annotations

from dataclasses import dataclass

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
}


def chart(key: str, override: str | None = None) -> HelmChart:
    base = CHARTS[key]
    return HelmChart(base.chart, base.repo, override or base.version)


def git_source(key: str, override: str | None = None) -> GitSource:
    base = GIT_SOURCES[key]
    return GitSource(base.url, override or base.tag, base.path)


def flux_install_url(version: str = FLUX_VERSION) -> str:
    """The Flux release manifest (all controllers and CRDs) for one pinned tag."""
    return f"https://github.com/fluxcd/flux2/releases/download/{version}/install.yaml"


def argocd_install_url(version: str = ARGOCD_VERSION) -> str:
    return f"https://raw.githubusercontent.com/argoproj/argo-cd/{version}/manifests/install.yaml"
