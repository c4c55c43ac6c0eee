"""Argo CD: the pinned Argo CD install, a root Application, and one Application per component,
ordered with sync waves (controllers, then configs, then apps)."""

from __future__ import annotations

from typing import Any

from tierzero.render.gitops.component import Component, ConfigOnly, Manifest, namespace
from tierzero.render.gitops.layers import APPS, CONFIGS, CONTROLLERS, add_shared, kustomize_layers, repo_path
from tierzero.render.gitops.tree import Tree
from tierzero.render.gitops.versions import ARGOCD_VERSION, GitSource, HelmChart, argocd_install_url
from tierzero.spec.clusters import Cluster, GitOps

NS = "argocd"
IN_CLUSTER = "https://kubernetes.default.svc"


def _waves(components: list[Component]) -> dict[str, int]:
    """Each component one wave after everything it depends on (wave 1 at the least)."""
    by_name = {c.name: c for c in components}
    waves: dict[str, int] = {}

    def wave(name: str, seen: frozenset[str] = frozenset()) -> int:
        if name not in waves:
            deps = [d for d in by_name[name].depends_on if d in by_name and d not in seen]
            waves[name] = 1 + max((wave(d, seen | {name}) for d in deps), default=0)
        return waves[name]

    for comp in components:
        wave(comp.name)
    return waves


def application(name: str, wave: int, source: dict[str, Any], dest_ns: str | None = None) -> Manifest:
    destination: dict[str, Any] = {"server": IN_CLUSTER}
    if dest_ns:
        destination["namespace"] = dest_ns
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {
            "name": name,
            "namespace": NS,
            "annotations": {"argocd.argoproj.io/sync-wave": str(wave)},
            "finalizers": ["resources-finalizer.argocd.argoproj.io"],
        },
        "spec": {
            "project": "default",
            "source": source,
            "destination": destination,
            "syncPolicy": {
                "automated": {"prune": True, "selfHeal": True},
                "syncOptions": ["CreateNamespace=true", "ServerSideApply=true"],
                "retry": {"limit": 5, "backoff": {"duration": "30s", "factor": 2, "maxDuration": "5m"}},
            },
        },
    }


def _repo_source(gitops: GitOps, *parts: str) -> dict[str, Any]:
    return {"repoURL": gitops.repo_url, "targetRevision": gitops.branch, "path": repo_path(gitops.path, *parts)[2:]}


def component_source(comp: Component) -> dict[str, Any] | None:
    src = comp.source
    helm: dict[str, Any] = {"releaseName": comp.name}
    if comp.values:
        helm["valuesObject"] = comp.values
    if isinstance(src, HelmChart):
        if src.is_oci:
            return {"repoURL": src.repo, "targetRevision": src.version, "path": ".", "helm": helm}
        return {"repoURL": src.repo, "chart": src.chart, "targetRevision": src.version, "helm": helm}
    if isinstance(src, GitSource):
        return {"repoURL": src.url, "targetRevision": src.tag, "path": src.path}
    assert isinstance(src, ConfigOnly)
    return None


def build_argocd(tree: Tree, cluster: Cluster, gitops: GitOps, components: list[Component]) -> None:
    base = f"clusters/{cluster.name}"
    tree.add(f"{base}/argocd/namespace.yaml", namespace(NS))
    tree.kustomize(f"{base}/argocd", resources=["namespace.yaml", argocd_install_url(ARGOCD_VERSION)], namespace=NS)

    waves = _waves(components)
    last = max(waves.values(), default=1)
    apps_dir = f"{base}/applications"
    tree.add(f"{apps_dir}/argocd.yaml", application("argocd", -1, _repo_source(gitops, base, "argocd")))
    tree.add(f"{apps_dir}/infra-controllers.yaml", application("infra-controllers", 0, _repo_source(gitops, CONTROLLERS)))
    for comp in components:
        source = component_source(comp)
        if source is not None:
            tree.add(f"{apps_dir}/{comp.name}.yaml", application(comp.name, waves[comp.name], source, comp.namespace))
    tree.add(f"{apps_dir}/infra-configs.yaml", application("infra-configs", last + 1, _repo_source(gitops, CONFIGS)))
    tree.add(f"{apps_dir}/apps.yaml", application("apps", last + 2, _repo_source(gitops, APPS)))
    tree.kustomize(apps_dir)
    tree.add(f"{base}/root.yaml", application("root", 0, _repo_source(gitops, apps_dir)))
    tree.kustomize(base, resources=["argocd", "root.yaml"])

    add_shared(tree, components)
    kustomize_layers(tree)
