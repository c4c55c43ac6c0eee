"""The GitOps tree of one cluster: Flux (or Argo CD) sync, infrastructure controllers and
configs per add-on, apps/, `.sops.yaml`, and every Secret already SOPS-encrypted."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tierzero.render.gitops.cilium import cilium_inline_manifests, flux_install_manifest_url
from tierzero.render.gitops.versions import flux_install_url

if TYPE_CHECKING:
    from tierzero.engine.step import SecretStore
    from tierzero.spec.models import Cluster, Platform

__all__ = ["GitopsResult", "cilium_inline_manifests", "flux_install_manifest_url", "flux_install_url", "render_gitops", "render_gitops_tree"]


@dataclass
class GitopsResult:
    files: dict[str, bytes]
    engine: str
    addons: list[str]
    secrets: int = 0
    reused: int = 0  # Secrets whose previous ciphertext was kept
    notes: list[str] = field(default_factory=list)


def render_gitops_tree(
    platform: "Platform",
    cluster: "Cluster",
    secrets: "SecretStore",
    recipient: str,
    previous_dir: Path | None = None,
    facts: Mapping[str, str] | None = None,
) -> GitopsResult:
    from tierzero.adapters.sops import AgeKey
    from tierzero.errors import InputError
    from tierzero.render.gitops.addons import components
    from tierzero.render.gitops.argocd import build_argocd
    from tierzero.render.gitops.component import RenderContext
    from tierzero.render.gitops.encrypt import encrypt_secrets
    from tierzero.render.gitops.flux import build_flux
    from tierzero.render.gitops.tree import Tree, sops_config, top_directories

    if cluster.gitops is None:
        raise InputError(f"cluster {cluster.name} has no `gitops` block", hint="add gitops: {repo_url: ...} to render its tree")
    ctx = RenderContext(platform, cluster, secrets, dict(facts or {}))
    comps = components(ctx)
    tree = Tree()
    if cluster.gitops.engine == "argocd":
        build_argocd(tree, cluster, cluster.gitops, comps)
        if tree.secrets:
            ctx.notes.append("argocd: Secrets are SOPS-encrypted in Git; Argo CD applies them only with a SOPS plugin (KSOPS) installed")
    else:
        build_flux(tree, cluster, cluster.gitops, comps)
    tree.raw[".sops.yaml"] = sops_config(recipient, top_directories(tree))
    age_key = getattr(secrets, "age_key", None)
    key: AgeKey | None = age_key() if callable(age_key) else None
    encrypted = encrypt_secrets(tree.secret_plaintexts(), recipient, key, previous_dir)
    files = {**tree.plain_files(), **encrypted.files}
    return GitopsResult(
        files=dict(sorted(files.items())),
        engine=cluster.gitops.engine,
        addons=list(cluster.addons.enabled()),
        secrets=len(encrypted.files),
        reused=encrypted.reused,
        notes=ctx.notes,
    )


def render_gitops(
    platform: "Platform",
    cluster: "Cluster",
    secrets: "SecretStore",
    recipient: str,
    previous_dir: Path | None = None,
    facts: Mapping[str, str] | None = None,
) -> dict[str, bytes]:
    """The cluster's tree as {relative path: bytes}; Secrets encrypted to `recipient`, and
    unchanged ones byte-identical to `previous_dir`'s copy."""
    return render_gitops_tree(platform, cluster, secrets, recipient, previous_dir, facts).files
