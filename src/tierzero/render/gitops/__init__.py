"""The GitOps tree of one cluster: Flux (or Argo CD) sync, infrastructure controllers and
configs per add-on, apps/, `.sops.yaml`, and every Secret as a plaintext to seal (the plan
SOPS-encrypts them before writing: see tierzero.workspace.plan)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tierzero.render.gitops.cilium import cilium_inline_manifests
from tierzero.render.sealing import Sealed

if TYPE_CHECKING:
    from tierzero.engine.step import SecretStore
    from tierzero.spec.models import Cluster, Platform

__all__ = ["GitopsResult", "cilium_inline_manifests", "render_gitops_tree"]


@dataclass
class GitopsResult:
    files: dict[str, bytes]  # everything but the Secrets
    secrets: dict[str, Sealed]  # the Secrets, by path, to seal before they are written
    engine: str
    addons: list[str]
    notes: list[str] = field(default_factory=list)


def render_gitops_tree(
    platform: "Platform",
    cluster: "Cluster",
    secrets: "SecretStore",
    recipient: str,
    facts: Mapping[str, str] | None = None,
) -> GitopsResult:
    """The cluster's tree; `recipient` is the age recipient `.sops.yaml` names."""
    from tierzero.errors import InputError
    from tierzero.render.gitops.addons import components
    from tierzero.render.gitops.argocd import build_argocd
    from tierzero.render.gitops.component import RenderContext
    from tierzero.render.gitops.flux import build_flux
    from tierzero.render.gitops.tree import Tree, sops_config, top_directories

    if cluster.gitops is None:
        raise InputError(f"cluster {cluster.name} has no `gitops` block", hint="add gitops: {repo_url: ...} to render its tree")
    ctx = RenderContext(platform, cluster, secrets, dict(facts or {}), recipient=recipient)
    comps = components(ctx)
    tree = Tree()
    if cluster.gitops.engine == "argocd":
        build_argocd(tree, cluster, cluster.gitops, comps)
        if tree.secrets:
            ctx.notes.append("argocd: Secrets are SOPS-encrypted in Git; Argo CD applies them only with a SOPS plugin (KSOPS) installed")
    else:
        build_flux(tree, cluster, cluster.gitops, comps)
    tree.raw[".sops.yaml"] = sops_config(recipient, top_directories(tree))
    return GitopsResult(
        files=dict(sorted(tree.plain_files().items())),
        secrets={path: Sealed(plain) for path, plain in sorted(tree.secret_plaintexts().items())},
        engine=cluster.gitops.engine,
        addons=list(cluster.addons.enabled()),
        notes=ctx.notes,
    )
