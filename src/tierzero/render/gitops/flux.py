"""Flux: clusters/<cluster>/ (flux-system, laid out as `flux bootstrap` does, and the layers),
HelmRepository/OCIRepository + HelmRelease per add-on, and Kustomizations ordering
controllers -> configs -> apps.

clusters/<cluster>/flux-system/ holds `gotk-components.yaml` (Flux's own controllers and CRDs
for the pinned version, `flux install --export`), `gotk-sync.yaml` (the GitRepository and
Kustomization named flux-system) and a kustomization.yaml listing both (flux2
pkg/manifestgen/{install,sync,kustomization} @ v2.8.6). gotk-components.yaml is not rendered
here: it is Flux's file, obtained and checked against its recorded digest at deploy
(`tierzero.adapters.flux_components`) and committed beside the rest. Nothing in the tree
points at a URL Flux would fetch its own manifests from."""

from __future__ import annotations

from typing import Any

from tierzero.render.gitops.component import Component, ConfigOnly, Manifest
from tierzero.render.gitops.layers import APPS, CONFIGS, CONTROLLERS, add_shared, kustomize_layers, repo_path
from tierzero.render.gitops.tree import Tree
from tierzero.render.gitops.versions import GitSource, HelmChart
from tierzero.spec.clusters import Cluster, GitOps

NS = "flux-system"
SOURCE = "source.toolkit.fluxcd.io/v1"
KUSTOMIZE = "kustomize.toolkit.fluxcd.io/v1"
HELM = "helm.toolkit.fluxcd.io/v2"
DECRYPTION = {"provider": "sops", "secretRef": {"name": "sops-age"}}
HELM_LAYER = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
COMPONENTS_FILE = "gotk-components.yaml"
SYNC_FILE = "gotk-sync.yaml"


def flux_system_dir(cluster: str) -> str:
    """Where the cluster's flux-system files live in the repository (relative to gitops.path)."""
    return f"clusters/{cluster}/flux-system"


def components_path(cluster: str) -> str:
    return f"{flux_system_dir(cluster)}/{COMPONENTS_FILE}"


def git_url(url: str) -> str:
    """Flux wants ssh:// URLs; turn scp-like `git@host:org/repo` into one."""
    if url.startswith("git@") and "://" not in url:
        host, _, path = url[len("git@"):].partition(":")
        return f"ssh://git@{host}/{path}"
    return url


def _meta(name: str) -> dict[str, str]:
    return {"name": name, "namespace": NS}


def helm_manifests(comp: Component, chart: HelmChart, helm_names: set[str]) -> list[Manifest]:
    spec: dict[str, Any] = {"interval": "30m", "releaseName": comp.name, "targetNamespace": comp.namespace, "storageNamespace": comp.namespace}
    if chart.is_oci:
        source: Manifest = {
            "apiVersion": SOURCE,
            "kind": "OCIRepository",
            "metadata": _meta(comp.name),
            "spec": {"interval": "12h", "url": chart.repo, "ref": {"tag": chart.version}, "layerSelector": {"mediaType": HELM_LAYER, "operation": "copy"}},
        }
        spec["chartRef"] = {"kind": "OCIRepository", "name": comp.name, "namespace": NS}
    else:
        source = {"apiVersion": SOURCE, "kind": "HelmRepository", "metadata": _meta(comp.name), "spec": {"interval": "12h", "url": chart.repo}}
        spec["chart"] = {"spec": {"chart": chart.chart, "version": chart.version, "sourceRef": {"kind": "HelmRepository", "name": comp.name, "namespace": NS}, "interval": "12h"}}
    depends = [{"name": d} for d in comp.depends_on if d in helm_names]  # HelmReleases wait only on HelmReleases
    if depends:
        spec["dependsOn"] = depends
    spec["install"] = {"crds": "CreateReplace", "remediation": {"retries": 3}}
    spec["upgrade"] = {"crds": "CreateReplace", "remediation": {"retries": 3}}
    if comp.values:
        spec["values"] = comp.values
    return [source, {"apiVersion": HELM, "kind": "HelmRelease", "metadata": _meta(comp.name), "spec": spec}]


def git_manifests(comp: Component, src: GitSource) -> list[Manifest]:
    repo = {
        "apiVersion": SOURCE,
        "kind": "GitRepository",
        "metadata": _meta(comp.name),
        "spec": {"interval": "12h", "url": src.url, "ref": {"tag": src.tag}, "ignore": f"/*\n!/{src.path}/\n"},
    }
    ks = {
        "apiVersion": KUSTOMIZE,
        "kind": "Kustomization",
        "metadata": _meta(comp.name),
        "spec": {"interval": "30m", "path": f"./{src.path}", "prune": True, "wait": True, "timeout": "5m", "sourceRef": {"kind": "GitRepository", "name": comp.name}},
    }
    return [repo, ks]


def kustomization(name: str, path: str, depends_on: str | None = None, decrypt: bool = True) -> Manifest:
    spec: dict[str, Any] = {"interval": "1h", "retryInterval": "1m", "timeout": "10m"}
    if depends_on:
        spec["dependsOn"] = [{"name": depends_on}]
    spec.update({"sourceRef": {"kind": "GitRepository", "name": NS}, "path": path, "prune": True, "wait": True})
    if decrypt:
        spec["decryption"] = DECRYPTION
    return {"apiVersion": KUSTOMIZE, "kind": "Kustomization", "metadata": _meta(name), "spec": spec}


def sync_manifests(cluster: Cluster, gitops: GitOps) -> list[Manifest]:
    repo_spec: dict[str, Any] = {"interval": "1m", "ref": {"branch": gitops.branch}, "url": git_url(gitops.repo_url)}
    if not gitops.repo_url.startswith("https://"):
        repo_spec["secretRef"] = {"name": NS}  # the deploy key: a Secret tierzero applies at bootstrap, never in Git
    repo = {"apiVersion": SOURCE, "kind": "GitRepository", "metadata": _meta(NS), "spec": repo_spec}
    ks = {
        "apiVersion": KUSTOMIZE,
        "kind": "Kustomization",
        "metadata": _meta(NS),
        "spec": {"interval": "10m", "path": repo_path(gitops.path, "clusters", cluster.name), "prune": True, "sourceRef": {"kind": "GitRepository", "name": NS}},
    }
    return [repo, ks]


def build_flux(tree: Tree, cluster: Cluster, gitops: GitOps, components: list[Component]) -> None:
    base = f"clusters/{cluster.name}"
    tree.add(f"{flux_system_dir(cluster.name)}/{SYNC_FILE}", *sync_manifests(cluster, gitops))
    tree.kustomize(flux_system_dir(cluster.name), resources=[COMPONENTS_FILE, SYNC_FILE])
    tree.add(
        f"{base}/infrastructure.yaml",
        kustomization("infra-controllers", repo_path(gitops.path, CONTROLLERS)),
        kustomization("infra-configs", repo_path(gitops.path, CONFIGS), depends_on="infra-controllers"),
    )
    tree.add(f"{base}/apps.yaml", kustomization("apps", repo_path(gitops.path, APPS), depends_on="infra-configs"))
    tree.kustomize(base, resources=["flux-system", "apps.yaml", "infrastructure.yaml"])

    add_shared(tree, components)
    helm_names = {c.name for c in components if isinstance(c.source, HelmChart)}
    for comp in components:
        if isinstance(comp.source, HelmChart):
            tree.add(f"{CONTROLLERS}/{comp.name}.yaml", *helm_manifests(comp, comp.source, helm_names))
        elif isinstance(comp.source, GitSource):
            tree.add(f"{CONTROLLERS}/{comp.name}.yaml", *git_manifests(comp, comp.source))
        else:
            assert isinstance(comp.source, ConfigOnly)
    kustomize_layers(tree)
