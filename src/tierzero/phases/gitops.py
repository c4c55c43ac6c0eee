"""Phase "gitops": hand each cluster to its GitOps engine.

Per cluster with a `gitops` block: the Secret flux-system/sops-age holding the workspace age
key (so Flux can decrypt the SOPS-encrypted tree), the rendered bootstrap applied (Flux: the
pinned install plus gotk-sync; Argo CD: its install plus the root Application), then a wait until
every Kustomization and HelmRelease (or Application) is Ready, naming the ones that are not.
"""

from __future__ import annotations

import asyncio
import base64
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

import yaml

from tierzero.adapters.errors import CallFailed
from tierzero.adapters.http import fetcher
from tierzero.adapters.protocols import KubernetesApi
from tierzero.adapters.retry import RetryExhausted, Transient, retry_async
from tierzero.adapters.ssh import retry_policy
from tierzero.engine.step import Step, StepContext
from tierzero.errors import OperationError
from tierzero.phases.platform import kube_client

if TYPE_CHECKING:
    from tierzero.spec.models import Cluster, GitOps, Platform

FLUX_NS = "flux-system"
KUSTOMIZE = "kustomize.toolkit.fluxcd.io/v1"
HELM = "helm.toolkit.fluxcd.io/v2"
ARGO = "argoproj.io/v1alpha1"


@dataclass
class GitopsHooks:
    """What the GitOps steps call outside this module; `steps(spec, hooks)` takes a test's own.
    Remote kustomization resources (the pinned installs) are read through `connections.fetch`."""

    kube: Callable[[StepContext, Cluster], KubernetesApi] = kube_client


def _cluster(ctx: StepContext, name: str) -> Cluster:
    return ctx.spec.cluster(name)


def gitops_of(cluster: Cluster) -> GitOps:
    """The cluster's gitops block (the GitOps steps exist only for clusters that have one)."""
    if cluster.gitops is None:
        raise OperationError(f"cluster {cluster.name} has no gitops block", hint="add clusters[].gitops to hand it to Flux or Argo CD")
    return cluster.gitops


def bootstrap_dir(ctx: StepContext, cluster: Cluster) -> Path:
    """The rendered bootstrap: clusters/<cluster>/flux-system for Flux (its sync then applies the
    rest from Git); clusters/<cluster> for Argo CD (its install plus the root Application)."""
    path = ctx.workspace.render_dir / "gitops" / cluster.name / "clusters" / cluster.name
    if gitops_of(cluster).engine == "flux":
        path = path / "flux-system"
    if not (path / "kustomization.yaml").is_file():
        raise OperationError(f"no rendered GitOps bootstrap at {path}", hint="run `tierzero plan` first: it renders the GitOps tree")
    return path


def manifests_of(directory: Path, fetch: Callable[[str], str]) -> list[dict[str, Any]]:
    """The documents a kustomization.yaml lists: local files, sub-directories and URLs, in order."""
    kust = yaml.safe_load((directory / "kustomization.yaml").read_text()) or {}
    namespace = kust.get("namespace")
    docs: list[dict[str, Any]] = []
    for res in kust.get("resources", []):
        if res.startswith(("https://", "http://")):
            text = fetch(res)
        elif (directory / res).is_dir():
            docs.extend(manifests_of(directory / res, fetch))
            continue
        else:
            text = (directory / res).read_text()
        for doc in yaml.safe_load_all(text):
            if isinstance(doc, dict) and doc.get("kind"):
                if namespace and doc.get("kind") not in ("Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"):
                    doc.setdefault("metadata", {}).setdefault("namespace", namespace)
                docs.append(doc)
    return docs


def _age_key(ctx: StepContext) -> str:
    for line in ctx.workspace.age_key.read_text().splitlines():
        if line.startswith("AGE-SECRET-KEY-"):
            return line.strip()
    raise OperationError(f"{ctx.workspace.age_key} holds no age identity", hint="restore the workspace age key; Flux needs it to decrypt secrets")


# ---------------------------------------------------------------------------- steps

def _sops_secret(h: GitopsHooks, name: str):
    async def run(ctx: StepContext, inputs: Any) -> Mapping[str, Any]:
        cluster = _cluster(ctx, name)
        kube = h.kube(ctx, cluster)
        ns = "flux-system" if gitops_of(cluster).engine == "flux" else "argocd"
        secret = {
            "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": "sops-age", "namespace": ns, "labels": {"app.kubernetes.io/managed-by": "tierzero"}},
            "data": {"age.agekey": base64.b64encode((_age_key(ctx) + "\n").encode()).decode()},
        }
        await asyncio.to_thread(kube.apply, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        action, _ = await asyncio.to_thread(kube.apply, secret)
        return {"secret": f"{ns}/sops-age", "action": action}

    return run


def _bootstrap(h: GitopsHooks, name: str):
    async def run(ctx: StepContext, inputs: Any) -> Mapping[str, Any]:
        cluster = _cluster(ctx, name)
        kube = h.kube(ctx, cluster)
        docs = await asyncio.to_thread(manifests_of, bootstrap_dir(ctx, cluster), fetcher(ctx.connections))
        # CRDs and namespaces first, so the custom objects after them find their kinds.
        order = {"CustomResourceDefinition": 0, "Namespace": 1}
        docs.sort(key=lambda d: order.get(d["kind"], 2))
        counts: dict[str, int] = {}
        policy = retry_policy(ctx.connections, "kubernetes")
        for doc in docs:
            action, _ = await retry_async(functools.partial(asyncio.to_thread, kube.apply, doc), policy=policy, classify=_apply_transient,
                                          on_retry=ctx.retry, what=f"apply {doc['kind']} {doc.get('metadata', {}).get('name')}")
            counts[action] = counts.get(action, 0) + 1
        return {"engine": gitops_of(cluster).engine, "objects": len(docs), **counts}

    return run


def _apply_transient(exc: BaseException) -> bool:
    """The API may be busy (5xx) or not know a custom kind yet (404 until its CRD is established)."""
    status = getattr(exc, "status", None)
    if isinstance(status, int):
        return status in (404, 409, 429) or status >= 500
    if isinstance(exc, CallFailed):
        return exc.transient
    return isinstance(exc, (ConnectionError, TimeoutError, OSError))


def _not_ready_flux(kube: Any) -> list[str]:
    bad = []
    for api, kind in ((KUSTOMIZE, "Kustomization"), (HELM, "HelmRelease")):
        for obj in kube.list(api, kind, None):
            conds = {c.get("type"): c for c in obj.get("status", {}).get("conditions", [])}
            ready = conds.get("Ready", {})
            if ready.get("status") != "True":
                meta = obj.get("metadata", {})
                bad.append(f"{kind} {meta.get('namespace')}/{meta.get('name')}: {ready.get('message') or ready.get('reason') or 'no status yet'}")
    return bad


def _not_ready_argo(kube: Any) -> list[str]:
    bad = []
    for app in kube.list(ARGO, "Application", None):
        st = app.get("status", {})
        health, sync = st.get("health", {}).get("status"), st.get("sync", {}).get("status")
        if health != "Healthy" or sync != "Synced":
            msg = (st.get("conditions") or [{}])[-1].get("message") or f"health={health}, sync={sync}"
            bad.append(f"Application {app['metadata'].get('name')}: {msg}")
    return bad


def _ready(h: GitopsHooks, name: str):
    async def run(ctx: StepContext, inputs: Any) -> Mapping[str, Any]:
        cluster = _cluster(ctx, name)
        kube = h.kube(ctx, cluster)
        probe = _not_ready_flux if gitops_of(cluster).engine == "flux" else _not_ready_argo
        last: list[str] = []

        async def check() -> None:
            last[:] = await asyncio.to_thread(probe, kube)
            if last:
                raise Transient(f"{len(last)} not ready")

        ctx.wait(f"{gitops_of(cluster).engine} on {cluster.name}: everything Ready")
        try:
            await retry_async(check, policy=retry_policy(ctx.connections, "wait"), on_retry=ctx.retry, what=f"GitOps on {cluster.name}")
        except RetryExhausted as exc:
            raise OperationError(
                f"GitOps on {cluster.name} is not Ready: " + "; ".join(last[:10]),
                hint="check the repository was pushed (the tree from `tierzero plan`) and see `flux get all -A` / the Argo CD UI",
            ) from exc
        return {"engine": gitops_of(cluster).engine, "ready": True}

    return run


def _tree_digest(ctx: StepContext, cluster: Cluster) -> str | None:
    import hashlib

    try:
        root = bootstrap_dir(ctx, cluster)
    except OperationError:
        return None
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _sops_inputs(cluster: Cluster, ctx: StepContext) -> dict[str, Any]:
    recipient = ctx.workspace.age_recipient() if ctx.workspace.age_recipient_file.exists() else None
    return {"engine": gitops_of(cluster).engine, "recipient": recipient}


def _bootstrap_inputs(cluster: Cluster, ctx: StepContext) -> dict[str, Any]:
    return {"gitops": gitops_of(cluster).model_dump(mode="json"), "tree": _tree_digest(ctx, cluster)}


def steps(spec: Platform, hooks: GitopsHooks | None = None) -> list[Step]:
    h = hooks or GitopsHooks()
    out: list[Step] = []
    for cluster in spec.clusters:
        if cluster.gitops is None:
            continue
        c = cluster.name
        base = f"gitops/{c}"
        out.append(Step(f"{base}/sops-age", "gitops", f"Secret sops-age with the workspace age key on {c}", _sops_secret(h, c),
                        inputs=functools.partial(_sops_inputs, cluster),
                        real_only=True))
        out.append(Step(f"{base}/bootstrap", "gitops", f"install {gitops_of(cluster).engine} on {c} and point it at {gitops_of(cluster).repo_url}", _bootstrap(h, c),
                        inputs=functools.partial(_bootstrap_inputs, cluster), needs=(f"{base}/sops-age",), real_only=True))
        out.append(Step(f"{base}/ready", "gitops", f"wait for {gitops_of(cluster).engine} on {c} to be Ready", _ready(h, c), needs=(f"{base}/bootstrap",)))
    return out
