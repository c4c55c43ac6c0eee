"""helm-controller's part of the Flux stand-in. It runs no Helm and reaches no chart repository
(the sandbox is offline), so a HelmRelease is never really installed. What it checks and says:

- `dependsOn` (HelmReleases, same namespace by default): one not Ready is DependencyNotReady
  "dependency '<ns>/<name>' is not ready" (helm-controller api/v2 condition_types.go @ v1.5.4)
- its chart source (`chartRef`, or `chart.spec.sourceRef`) must exist: else ArtifactFailed
  "<Kind> '<ns>/<name>' not found" (the stand-in's wording)
- then Ready=True with the stand-in's own reason `NotRunInSandbox`, the message naming the
  chart and version that were not installed; `tierzero validate` shows that reason beside the
  name, so nobody mistakes it for an install
- the chart's CRDs that tierzero's configs use are registered, as the chart would install them
  (`install.crds` defaults to Create; tierzero sets CreateReplace), from `CHART_CRDS` below, so
  a Kustomization applying e.g. a ClusterIssuer finds its kind as it would on a real cluster
- sources fetched by source-controller from the internet (HelmRepository, OCIRepository,
  HelmChart, Bucket) are not fetched: Ready=True, `NotRunInSandbox`, saying so
"""

from __future__ import annotations

from typing import Any

NOT_RUN = "NotRunInSandbox"

# chart -> the CRDs it installs that tierzero's rendered configs use: (group, version, kind, plural, scope).
# Sources: cert-manager deploy/crds (v1.19), metallb config/crd/bases (v0.15), external-secrets
# config/crds/bases (v0.20, external-secrets.io/v1 since v0.17), tailscale k8s-operator deploy/crds (v1.88),
# Infisical secrets-operator config/crd/bases (v0.11).
CHART_CRDS: dict[str, tuple[tuple[str, str, str, str, str], ...]] = {
    "cert-manager": (("cert-manager.io", "v1", "ClusterIssuer", "clusterissuers", "Cluster"),
                     ("cert-manager.io", "v1", "Issuer", "issuers", "Namespaced"),
                     ("cert-manager.io", "v1", "Certificate", "certificates", "Namespaced")),
    "metallb": (("metallb.io", "v1beta1", "IPAddressPool", "ipaddresspools", "Namespaced"),
                ("metallb.io", "v1beta1", "L2Advertisement", "l2advertisements", "Namespaced")),
    "external-secrets": (("external-secrets.io", "v1", "ClusterSecretStore", "clustersecretstores", "Cluster"),
                         ("external-secrets.io", "v1", "ExternalSecret", "externalsecrets", "Namespaced")),
    "tailscale-operator": (("tailscale.com", "v1alpha1", "Connector", "connectors", "Cluster"),
                           ("tailscale.com", "v1alpha1", "ProxyClass", "proxyclasses", "Cluster")),
    "secrets-operator": (("secrets.infisical.com", "v1alpha1", "InfisicalSecret", "infisicalsecrets", "Namespaced"),),
}


def chart_of(release: dict[str, Any], source: dict[str, Any] | None) -> tuple[str, str]:
    """(chart name, version) a HelmRelease asks for."""
    spec = release.get("spec", {})
    chart = (spec.get("chart") or {}).get("spec") or {}
    if chart.get("chart"):
        return str(chart["chart"]), str(chart.get("version") or "*")
    src = (source or {}).get("spec", {})
    url = str(src.get("url", ""))
    return url.rstrip("/").rsplit("/", 1)[-1] or "?", str((src.get("ref") or {}).get("tag") or "latest")


def source_ref(release: dict[str, Any]) -> tuple[str, str, str] | None:
    """(kind, namespace, name) of the chart's source object."""
    spec, ns = release.get("spec", {}), release["metadata"].get("namespace", "")
    ref = spec.get("chartRef") or ((spec.get("chart") or {}).get("spec") or {}).get("sourceRef")
    if not ref:
        return None
    return str(ref.get("kind")), str(ref.get("namespace") or ns), str(ref.get("name"))


def crd_documents(chart: str) -> list[dict[str, Any]]:
    out = []
    for group, version, kind, plural, scope in CHART_CRDS.get(chart, ()):
        out.append({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                    "metadata": {"name": f"{plural}.{group}", "labels": {"app.kubernetes.io/name": chart, "tierzero.dev/sandbox-standin": "true"}},
                    "spec": {"group": group, "scope": scope, "names": {"kind": kind, "plural": plural, "singular": kind.lower(), "listKind": f"{kind}List"},
                             "versions": [{"name": version, "served": True, "storage": True, "subresources": {"status": {}},
                                           "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]}})
    return out
