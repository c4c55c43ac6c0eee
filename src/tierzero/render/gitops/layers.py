"""What both engines share: namespaces, Secrets and configs under infrastructure/, and apps/."""

from __future__ import annotations

import posixpath

from tierzero.render.gitops.component import Component, namespace
from tierzero.render.gitops.tree import Tree

CONTROLLERS = "infrastructure/controllers"
CONFIGS = "infrastructure/configs"
APPS = "apps"


def repo_path(prefix: str, *parts: str) -> str:
    """A path inside the Git repository, as `./a/b` (Flux) style."""
    return "./" + posixpath.join(*(p for p in (prefix.strip("/"), *parts) if p))


def add_shared(tree: Tree, components: list[Component]) -> None:
    namespaces = {}
    for comp in components:
        if comp.create_namespace:
            namespaces[comp.namespace] = namespace(comp.namespace, comp.namespace_labels)
    tree.add(f"{CONTROLLERS}/namespaces.yaml", *(namespaces[k] for k in sorted(namespaces)))
    for comp in components:
        for manifest in comp.secrets:
            tree.add_secret(CONTROLLERS, manifest)
        tree.add(f"{CONFIGS}/{comp.name}.yaml", *comp.configs)
        for manifest in comp.config_secrets:
            tree.add_secret(CONFIGS, manifest)


def kustomize_layers(tree: Tree) -> None:
    for directory in (CONTROLLERS, CONFIGS, APPS):
        tree.kustomize(directory)
