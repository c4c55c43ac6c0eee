"""Phase "gitops": hand each cluster to its GitOps engine, through its Git repository.

Per cluster with a `gitops` block, in order:
- flux-components (Flux): the pinned Flux version's `gotk-components.yaml`, checked against its
  recorded digest (`tierzero.adapters.flux_components`);
- deploy-key (Flux over SSH): the read-only deploy key and the pinned host key
  (`tierzero.phases.gitops_keys`);
- push: the rendered tree (with flux-system/gotk-components.yaml) to `gitops.repo_url`, every
  deploy, so a file deleted in the remote comes back (`tierzero.phases.gitops_push`);
- sops-age: the Secret holding the workspace age key, so Flux can decrypt the tree;
- bootstrap: Flux's flux-system/ as committed (the components and the sync) and the
  flux-system Secret applied to the cluster, the way `flux bootstrap` installs (Argo CD: its
  install plus the root Application, from the rendered tree);
- ready: a reconcile requested, then a wait until every Kustomization and HelmRelease is Ready
  at the pushed revision, naming each one that is not.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from tierzero.adapters.errors import CallFailed
from tierzero.adapters.git import RemoteMoved
from tierzero.adapters.http import fetcher
from tierzero.adapters.protocols import KubernetesApi
from tierzero.adapters.retry import RetryExhausted, Transient, retry_async
from tierzero.adapters.ssh import retry_policy
from tierzero.engine.step import Step, StepContext
from tierzero.errors import OperationError
from tierzero.phases import gitops_keys, gitops_push
from tierzero.phases.flux_status import NS as FLUX_NS
from tierzero.phases.flux_status import SOURCE, flux_report
from tierzero.phases.platform import kube_client
from tierzero.render.gitops.flux import components_path, flux_system_dir

if TYPE_CHECKING:
    from tierzero.spec.models import Cluster, GitOps, Platform

ARGO = "argoproj.io/v1alpha1"
REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"  # what `flux reconcile` sets (fluxcd/pkg apis/meta ReconcileRequestAnnotation)


@dataclass
class GitopsHooks:
    """What the GitOps steps call outside this module; `steps(spec, hooks)` takes a test's own.
    Remote kustomization resources (Argo CD's pinned install) are read through `connections.fetch`."""

    kube: Callable[[StepContext, Cluster], KubernetesApi] = kube_client


def _cluster(ctx: StepContext, name: str) -> Cluster:
    return ctx.spec.cluster(name)


def gitops_of(cluster: Cluster) -> GitOps:
    """The cluster's gitops block (the GitOps steps exist only for clusters that have one)."""
    if cluster.gitops is None:
        raise OperationError(f"cluster {cluster.name} has no gitops block", hint="add clusters[].gitops to hand it to Flux or Argo CD")
    return cluster.gitops


def manifests_of(directory: Path, fetch: Callable[[str], str]) -> list[dict[str, Any]]:
    """The documents a kustomization.yaml lists: local files, sub-directories and URLs, in order."""
    kust = yaml.safe_load((directory / "kustomization.yaml").read_text()) or {}
    return _documents(kust, lambda res: (directory / res).read_text() if not (directory / res).is_dir() else None,
                      lambda res: manifests_of(directory / res, fetch), fetch)


def _documents(kust: Mapping[str, Any], read: Callable[[str], str | None], subdir: Callable[[str], list[dict[str, Any]]],
               fetch: Callable[[str], str]) -> list[dict[str, Any]]:
    namespace = kust.get("namespace")
    docs: list[dict[str, Any]] = []
    for res in kust.get("resources", []):
        text = fetch(res) if res.startswith(("https://", "http://")) else read(res)
        if text is None:
            docs.extend(subdir(res))
            continue
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


def _prefix(cluster: Cluster) -> str:
    return gitops_of(cluster).path.strip("/")


# ---------------------------------------------------------------------------- Flux components

def _components_inputs(cluster: Cluster, ctx: StepContext) -> dict[str, Any]:
    from tierzero.render.gitops.versions import FLUX_VERSION

    return {"version": FLUX_VERSION, "settings": gitops_of(cluster).flux.model_dump(mode="json")}


def _flux_components(name: str):
    async def run(ctx: StepContext, inputs: Any) -> Mapping[str, Any]:
        from tierzero.adapters import flux_components as fc
        from tierzero.render.gitops.versions import FLUX_VERSION

        cluster = _cluster(ctx, name)
        settings = gitops_of(cluster).flux
        file = Path(settings.components_file).expanduser() if settings.components_file else None
        if file is not None and not file.is_absolute():
            file = Path(ctx.workspace.root).parent / file
        got = await asyncio.to_thread(fc.obtain, Path(ctx.workspace.root), FLUX_VERSION, ctx.connections, components_file=file, download=settings.download)
        ctx.log(f"Flux {FLUX_VERSION} gotk-components.yaml ({len(got.data):,} bytes, sha256 {got.sha256[:12]}…) from {got.source}, "
                f"matching the digest {got.vouched}")
        return {"version": FLUX_VERSION, "sha256": got.sha256, "size": len(got.data), "source": got.source, "vouched": got.vouched}

    return run


def _components_bytes(ctx: StepContext, cluster: Cluster) -> bytes:
    from tierzero.adapters import flux_components as fc
    from tierzero.render.gitops.versions import FLUX_VERSION

    got = fc.cached(Path(ctx.workspace.root), FLUX_VERSION, ctx.connections)
    if got is None:
        raise OperationError(f"Flux {FLUX_VERSION}'s gotk-components.yaml is no longer in the cache (or no longer checks out)",
                             hint=f"run the deploy again: step gitops/{cluster.name}/flux-components fetches it first")
    return got.data


# ---------------------------------------------------------------------------- push

def repo_tree(ctx: StepContext, cluster: Cluster) -> dict[str, bytes]:
    """The managed files as they go to the repository (paths under gitops.path)."""
    extra = {components_path(cluster.name): _components_bytes(ctx, cluster)} if gitops_of(cluster).engine == "flux" else {}
    return gitops_push.managed_tree(gitops_push.render_files(ctx, cluster), _prefix(cluster), extra)


def _push(name: str):
    async def run(ctx: StepContext, inputs: Any) -> Mapping[str, Any]:
        cluster = _cluster(ctx, name)
        managed = repo_tree(ctx, cluster)
        gitops_push.check_tree(managed, [ctx.workspace.age_recipient()])
        remote = await asyncio.to_thread(gitops_push.open_remote, ctx, cluster)
        for attempt in range(1, 4):  # another cluster of the spec may push to the same branch (its own path) meanwhile
            try:
                result = await asyncio.to_thread(gitops_push.push_tree, remote, managed, cluster=name, prefix=_prefix(cluster),
                                                 force=ctx.connections.git.force, log=ctx.log)
                break
            except RemoteMoved as exc:
                if attempt == 3:
                    raise
                ctx.retry(attempt, exc.message, 0.0)
        if result.pushed:
            ctx.log(f"pushed {result.revision(remote.branch)} to {remote.shown_url}: " + "; ".join(result.change.lines(8)))
        return gitops_push.outputs(result, remote.branch, remote)

    return run


# ---------------------------------------------------------------------------- sops-age, bootstrap

def _sops_secret(h: GitopsHooks, name: str):
    async def run(ctx: StepContext, inputs: Any) -> Mapping[str, Any]:
        cluster = _cluster(ctx, name)
        kube = h.kube(ctx, cluster)
        ns = FLUX_NS if gitops_of(cluster).engine == "flux" else "argocd"
        secret = {
            "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": "sops-age", "namespace": ns, "labels": {"app.kubernetes.io/managed-by": "tierzero"}},
            "data": {"age.agekey": base64.b64encode((_age_key(ctx) + "\n").encode()).decode()},
        }
        await asyncio.to_thread(kube.apply, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        action, _ = await asyncio.to_thread(kube.apply, secret)
        return {"secret": f"{ns}/sops-age", "action": action}

    return run


def _flux_system_docs(ctx: StepContext, cluster: Cluster) -> list[dict[str, Any]]:
    """flux-system/ as committed at the pushed revision (read back from the workspace clone)."""
    commit = ctx.output(f"gitops/{cluster.name}/push").get("commit")
    if not commit:
        raise OperationError(f"nothing was pushed for {cluster.name}", hint="run the deploy again: the push step comes first")
    remote = gitops_push.open_remote(ctx, cluster)
    base = "/".join(p for p in (_prefix(cluster), flux_system_dir(cluster.name)) if p)
    kust = yaml.safe_load(remote.read(commit, f"{base}/kustomization.yaml")) or {}
    return _documents(kust, lambda res: remote.read(commit, f"{base}/{res}").decode(),
                      lambda res: [], lambda url: (_ for _ in ()).throw(OperationError(f"flux-system lists the URL {url}")))


def _argo_docs(ctx: StepContext, cluster: Cluster) -> list[dict[str, Any]]:
    path = ctx.workspace.render_dir / "gitops" / cluster.name / "clusters" / cluster.name
    if not (path / "kustomization.yaml").is_file():
        raise OperationError(f"no rendered GitOps bootstrap at {path}", hint="run `tierzero plan` first: it renders the GitOps tree")
    return manifests_of(path, fetcher(ctx.connections))


def _bootstrap(h: GitopsHooks, name: str):
    async def run(ctx: StepContext, inputs: Any) -> Mapping[str, Any]:
        cluster = _cluster(ctx, name)
        kube = h.kube(ctx, cluster)
        flux = gitops_of(cluster).engine == "flux"
        docs = await asyncio.to_thread(_flux_system_docs if flux else _argo_docs, ctx, cluster)
        if flux and gitops_keys.uses_deploy_key(cluster):
            docs.append(gitops_keys.flux_secret(ctx, cluster))
        # CRDs and namespaces first, so the custom objects after them find their kinds.
        order = {"CustomResourceDefinition": 0, "Namespace": 1}
        docs.sort(key=lambda d: order.get(d["kind"], 2))
        counts: dict[str, int] = {}
        policy = retry_policy(ctx.connections, "kubernetes")
        gate = asyncio.Semaphore(4)

        async def apply(doc: dict[str, Any]) -> None:
            async with gate:
                action, _ = await retry_async(functools.partial(asyncio.to_thread, kube.apply, doc), policy=policy, classify=_apply_transient,
                                              on_retry=ctx.retry, what=f"apply {doc['kind']} {doc.get('metadata', {}).get('name')}")
            counts[action] = counts.get(action, 0) + 1

        for doc in (d for d in docs if d["kind"] in order):  # the kinds and namespaces first, one by one
            await apply(doc)
        await asyncio.gather(*(apply(d) for d in docs if d["kind"] not in order))
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


# ---------------------------------------------------------------------------- ready

def _not_ready_argo(kube: Any) -> list[str]:
    bad = []
    for app in kube.list(ARGO, "Application", None):
        st = app.get("status", {})
        health, sync = st.get("health", {}).get("status"), st.get("sync", {}).get("status")
        if health != "Healthy" or sync != "Synced":
            msg = (st.get("conditions") or [{}])[-1].get("message") or f"health={health}, sync={sync}"
            bad.append(f"Application {app['metadata'].get('name')}: {msg}")
    return bad


def _request_reconcile(kube: Any) -> None:
    """Ask source-controller to fetch now, as `flux reconcile source git flux-system` does."""
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    try:
        kube.patch(SOURCE, "GitRepository", FLUX_NS, FLUX_NS, {"metadata": {"annotations": {REQUESTED_AT: stamp}}})
    except OperationError:  # only a nudge: Flux polls on its interval anyway (a refused patch is not worth failing for)
        pass


def _later_revision(ctx: StepContext, cluster: Cluster, pushed: Mapping[str, Any], source: str) -> str | None:
    """Flux's `source` revision when it is the branch's head now and holds the pushed commit."""
    commit = pushed.get("commit")
    remote = gitops_push.open_remote(ctx, cluster)
    head = remote.fetch()
    if not commit or not head or source != f"{remote.branch}@sha1:{head}" or not remote.contains(head, commit):
        return None
    ctx.log(f"the branch moved on to {source}, which holds the pushed commit: waiting for Flux at that revision")
    return source


def _ready(h: GitopsHooks, name: str):
    async def run(ctx: StepContext, inputs: Any) -> Mapping[str, Any]:
        cluster = _cluster(ctx, name)
        kube = h.kube(ctx, cluster)
        flux = gitops_of(cluster).engine == "flux"
        pushed: Mapping[str, Any] = ctx.output(f"gitops/{name}/push") if flux else {}
        expected: dict[str, Any] = {"revision": pushed.get("revision"), "looked": 0.0}
        last: list[str] = []
        report: list[Any] = []

        def probe() -> list[str]:
            if not flux:
                return _not_ready_argo(kube)
            found = flux_report(kube, expected["revision"])
            if found.source and found.source != expected["revision"] and time.monotonic() - expected["looked"] > 2.0:
                # Flux may be at a later commit that holds ours (another cluster's push to the same branch, someone's fix).
                expected["looked"] = time.monotonic()
                later = _later_revision(ctx, cluster, pushed, found.source)
                if later:
                    expected["revision"] = later
                    found = flux_report(kube, later)
            report[:] = [found]
            return found.pending()

        async def check() -> None:
            last[:] = await asyncio.to_thread(probe)
            if last:
                raise Transient(f"{len(last)} not ready")

        if flux:
            await asyncio.to_thread(_request_reconcile, kube)
        ctx.wait(f"{gitops_of(cluster).engine} on {cluster.name}: everything Ready" + (f" at {expected['revision']}" if flux else ""))
        try:
            await retry_async(check, policy=retry_policy(ctx.connections, "wait"), on_retry=ctx.retry, what=f"GitOps on {cluster.name}")
        except RetryExhausted as exc:
            raise OperationError(
                f"GitOps on {cluster.name} is not Ready: " + "; ".join(last[:10]),
                hint="the messages are the controllers' own; fix what they name (the spec, the repository, or the Secret), then deploy "
                     "again; `flux get all -A` shows the same",
            ) from exc
        if not flux:
            return {"engine": gitops_of(cluster).engine, "ready": True}
        done = report[0]
        ctx.log(done.evidence())
        return {"engine": "flux", "ready": True, "revision": expected["revision"],
                "kustomizations": [i.name for i in done.kustomizations], "helmreleases": [i.name for i in done.helmreleases]}

    return run


# ---------------------------------------------------------------------------- the steps

def _digest(files: Mapping[str, bytes]) -> str:
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(path.encode() + b"\0" + hashlib.sha256(files[path]).digest())
    return digest.hexdigest()


def _bootstrap_inputs(cluster: Cluster, ctx: StepContext) -> dict[str, Any]:
    out: dict[str, Any] = {"gitops": gitops_of(cluster).model_dump(mode="json")}
    if gitops_of(cluster).engine == "flux":
        push = ctx.outputs.get(f"gitops/{cluster.name}/push", {})
        out["flux_system"] = push.get("commit") and _flux_system_digest(ctx, cluster)
        keys = ctx.outputs.get(f"gitops/{cluster.name}/deploy-key", {})
        out["deploy_key"] = [keys.get("public_key"), keys.get("host_keys")]
    else:
        root = ctx.workspace.render_dir / "gitops" / cluster.name / "clusters" / cluster.name
        out["tree"] = _digest({str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}) if root.is_dir() else None
    return out


def _flux_system_digest(ctx: StepContext, cluster: Cluster) -> str | None:
    """The flux-system files as pushed (render + the components' digest): what the bootstrap applies."""
    root = ctx.workspace.render_dir / "gitops" / cluster.name / flux_system_dir(cluster.name)
    if not root.is_dir():
        return None
    files = {p.name: p.read_bytes() for p in sorted(root.iterdir()) if p.is_file()}
    files["components-sha256"] = str(ctx.outputs.get(f"gitops/{cluster.name}/flux-components", {}).get("sha256")).encode()
    return _digest(files)


def _deploy_key_inputs(cluster: Cluster, ctx: StepContext) -> dict[str, Any]:
    gitops = gitops_of(cluster)
    return {"repo": gitops.repo_url, "branch": gitops.branch, "forge": gitops.forge.model_dump(mode="json") if gitops.forge else None}


def _deploy_key(name: str):
    async def run(ctx: StepContext, inputs: Any) -> Mapping[str, Any]:
        return await gitops_keys.deploy_key(ctx, _cluster(ctx, name))

    return run


def _sops_inputs(cluster: Cluster, ctx: StepContext) -> dict[str, Any]:
    recipient = ctx.workspace.age_recipient() if ctx.workspace.age_recipient_file.exists() else None
    return {"engine": gitops_of(cluster).engine, "recipient": recipient}


def _ready_inputs(cluster: Cluster, ctx: StepContext) -> dict[str, Any]:
    return {"revision": ctx.outputs.get(f"gitops/{cluster.name}/push", {}).get("revision")}


def steps(spec: Platform, hooks: GitopsHooks | None = None) -> list[Step[Any]]:
    h = hooks or GitopsHooks()
    out: list[Step[Any]] = []
    for cluster in spec.clusters:
        if cluster.gitops is None:
            continue
        gitops = cluster.gitops
        c = cluster.name
        base = f"gitops/{c}"
        flux = gitops.engine == "flux"
        push_needs: list[str] = []
        if flux:
            out.append(Step(f"{base}/flux-components", "gitops", "Flux's own manifests for the pinned version, checked against their digest",
                            _flux_components(c), inputs=functools.partial(_components_inputs, cluster)))
            push_needs.append(f"{base}/flux-components")
        if gitops_keys.uses_deploy_key(cluster):
            out.append(Step(f"{base}/deploy-key", "gitops", f"read-only deploy key for Flux on {gitops.repo_url}",
                            _deploy_key(c), inputs=functools.partial(_deploy_key_inputs, cluster)))
            push_needs.append(f"{base}/deploy-key")
        out.append(Step(f"{base}/push", "gitops", f"push the GitOps tree of {c} to {gitops.repo_url} ({gitops.branch})",
                        _push(c), needs=tuple(push_needs), always=True, real_only=True))
        out.append(Step(f"{base}/sops-age", "gitops", f"Secret sops-age with the workspace age key on {c}", _sops_secret(h, c),
                        inputs=functools.partial(_sops_inputs, cluster), real_only=True))
        out.append(Step(f"{base}/bootstrap", "gitops", f"install {gitops.engine} on {c} from what was pushed", _bootstrap(h, c),
                        inputs=functools.partial(_bootstrap_inputs, cluster), needs=(f"{base}/push", f"{base}/sops-age", *push_needs),
                        real_only=True))
        out.append(Step(f"{base}/ready", "gitops", f"wait for {gitops.engine} on {c} to be Ready at the pushed revision", _ready(h, c),
                        inputs=functools.partial(_ready_inputs, cluster), needs=(f"{base}/bootstrap", f"{base}/push")))
    return out
