"""How Flux reads the repository over SSH (step gitops/<cluster>/deploy-key): an ed25519 deploy
key made once in the workspace (`clusters/<cluster>/flux-deploy-key`, 0600, never in Git), the
Git host's SSH key pinned on first contact and shown, and the key registered read-only through
the host's API when one is configured (`gitops.forge`, or the sandbox's), else printed with
where to add it. The bootstrap then applies both as the `flux-system` Secret in the shape
`flux create secret git` writes: `identity`, `identity.pub`, `known_hosts` (flux2
pkg/manifestgen/sourcesecret @ v2.8.6; source-controller requires identity and known_hosts).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tierzero.adapters.git import GitLocation, pin_host_key, pinned_lines
from tierzero.phases.gitops_push import known_hosts_file

if TYPE_CHECKING:
    from tierzero.adapters.forge import ForgeApi
    from tierzero.engine.step import StepContext
    from tierzero.spec.clusters import Cluster

SECRET = "flux-system"


def uses_deploy_key(cluster: Cluster) -> bool:
    """Flux with a repository it reads over SSH (an https:// one is read without credentials)."""
    return cluster.gitops is not None and cluster.gitops.engine == "flux" and not cluster.gitops.repo_url.startswith("https://")


def key_files(ctx: StepContext, cluster: Cluster) -> tuple[Path, Path]:
    base = ctx.workspace.cluster_dir(cluster.name)
    return base / "flux-deploy-key", base / "flux-deploy-key.pub"


def ensure_key(ctx: StepContext, cluster: Cluster) -> str:
    """The deploy key's public line, making the pair on first use only."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from tierzero.workspace.layout import write_private, write_public

    private, public = key_files(ctx, cluster)
    if private.exists() and public.exists():
        return public.read_text().strip()
    key = Ed25519PrivateKey.generate()
    line = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode() + f" flux-{cluster.name}"
    write_private(private, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()))
    write_public(public, line + "\n")
    return line


def flux_location(cluster: Cluster) -> GitLocation:
    from tierzero.render.gitops.flux import git_url

    assert cluster.gitops is not None
    return GitLocation.parse(git_url(cluster.gitops.repo_url))


def _where(ctx: StepContext, cluster: Cluster) -> tuple[tuple[str, int] | None, str | None]:
    """Where the repository host really answers, when the target says (the sandbox), and the alias its key is pinned under."""
    endpoint = ctx.connections.endpoints.get(("git", cluster.name))
    if endpoint is None or not endpoint.extra.get("url") or endpoint.scheme != "ssh":
        return None, None
    real = GitLocation.parse(str(endpoint.extra["url"]))
    return (real.host, real.port or 22), endpoint.extra.get("host_key_alias")


def repository_name(location: GitLocation) -> str:
    """owner/name of a hosted repository, as the deploy-key APIs want it."""
    return location.path.strip("/").removesuffix(".git")


def settings_url(location: GitLocation, kind: str | None) -> str:
    repo = repository_name(location)
    if kind == "github" or location.host == "github.com":
        return f"https://github.com/{repo}/settings/keys/new (Deploy keys; leave \"Allow write access\" off)"
    return f"https://{location.host}/{repo}/settings/keys (Deploy keys, read-only)"


def forge_api(ctx: StepContext, cluster: Cluster) -> ForgeApi | None:
    """The Git host's API: the target's (sandbox), or the spec's `gitops.forge`, or None."""
    from tierzero.adapters.forge import GITHUB_API, ForgeApi

    endpoint = ctx.connections.endpoints.get(("forge", cluster.name))
    if endpoint is not None:
        return ForgeApi(str(endpoint.extra["kind"]), str(endpoint.extra["api_url"]), str(endpoint.extra["token"]), endpoint.verify)
    assert cluster.gitops is not None
    forge = cluster.gitops.forge
    if forge is None:
        return None
    api_url = forge.api_url or (GITHUB_API if forge.kind == "github" else f"https://{flux_location(cluster).host}/api/v1")
    return ForgeApi(forge.kind, api_url, ctx.secrets.resolve(forge.token))


def key_title(cluster: Cluster) -> str:
    """Like flux bootstrap's key name (flux2 deployKeyName: namespace, branch, secret name, path joined by '-')."""
    assert cluster.gitops is not None
    parts = ["flux-system", cluster.gitops.branch, SECRET, f"./clusters/{cluster.name}"]
    return "-".join(p for p in parts if p)


async def deploy_key(ctx: StepContext, cluster: Cluster) -> dict[str, Any]:
    import asyncio

    public = ensure_key(ctx, cluster)
    location = flux_location(cluster)
    connect, alias = _where(ctx, cluster)
    prints, fresh = await asyncio.to_thread(pin_host_key, location, known_hosts_file(ctx), connect=connect, alias=alias)
    host = alias or location.known_hosts_name
    if fresh:
        ctx.log(f"first contact with {host}: pinned its SSH host key ({'; '.join(prints)}) in {known_hosts_file(ctx)}; "
                "compare with the fingerprints your Git host publishes")
    api = forge_api(ctx, cluster)
    out: dict[str, Any] = {"public_key": public, "host_keys": prints, "title": key_title(cluster)}
    if api is not None:
        from tierzero.adapters.forge import ensure_deploy_key

        out["registered"] = await asyncio.to_thread(ensure_deploy_key, api, repository_name(location), key_title(cluster), public)
        ctx.log(f"deploy key {key_title(cluster)} {out['registered']} (read-only) on {repository_name(location)}")
    else:
        out["registered"] = "by hand"
        out["add_at"] = settings_url(location, None)
        ctx.log(f"Flux reads {cluster.gitops.repo_url if cluster.gitops else ''} with this deploy key; add it read-only at "
                f"{out['add_at']}: {public}")
    return out


def flux_secret(ctx: StepContext, cluster: Cluster) -> dict[str, Any]:
    """The flux-system Secret: the deploy key and the pinned host keys (never in Git)."""
    private, public = key_files(ctx, cluster)
    location = flux_location(cluster)
    _, alias = _where(ctx, cluster)
    lines = pinned_lines(known_hosts_file(ctx), location, alias)
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": SECRET, "namespace": "flux-system", "labels": {"app.kubernetes.io/managed-by": "tierzero"}},
            "stringData": {"identity": private.read_text(), "identity.pub": public.read_text(), "known_hosts": "".join(f"{ln}\n" for ln in lines)}}
