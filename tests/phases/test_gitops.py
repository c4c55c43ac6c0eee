from __future__ import annotations

import base64

import pytest
import yaml

from tierzero.adapters.connections import Endpoint
from tierzero.adapters.retry import Policy
from tierzero.adapters.kubernetes import Kube
from tierzero.engine.runner import StepFailed
from tierzero.phases import gitops
from tierzero.sandbox.kubernetes import KubeApiServer, KubeState

from .conftest import blueprint

INSTALL = """
apiVersion: v1
kind: Namespace
metadata: {name: flux-system}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: source-controller, namespace: flux-system}
spec: {replicas: 1}
"""
SYNC = """
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata: {name: flux-system, namespace: flux-system}
spec: {url: "https://github.com/example/homelab-platform", ref: {branch: main}, interval: 1m}
---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {name: flux-system, namespace: flux-system}
spec: {path: ./clusters/main, sourceRef: {kind: GitRepository, name: flux-system}, interval: 10m, prune: true}
"""


def render_tree(box) -> None:
    d = box.ws.render_dir / "gitops" / "main" / "clusters" / "main" / "flux-system"
    d.mkdir(parents=True)
    (d / "gotk-sync.yaml").write_text(SYNC)
    (d / "kustomization.yaml").write_text(yaml.safe_dump({"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
                                                          "resources": ["https://github.com/fluxcd/flux2/releases/download/v2.7.0/install.yaml", "gotk-sync.yaml"]}))


@pytest.fixture
def kube_api():
    servers = []

    def start(**kw) -> KubeApiServer:
        srv = KubeApiServer(KubeState(**kw)).start()
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        srv.stop()


def wire(box, srv) -> list[str]:
    fetched: list[str] = []
    box.conns.add("kubernetes", "main", Endpoint("127.0.0.1", srv.port, scheme="http", verify=False))

    def fetch(url: str) -> str:
        fetched.append(url)
        return INSTALL

    box.gitops_hooks = gitops.GitopsHooks(kube=lambda ctx, c: Kube.connect(ctx.connections, c.name))
    box.conns.fetch = fetch
    return fetched


async def test_flux_bootstrap_and_ready(make_sandbox, kube_api):
    box = make_sandbox(blueprint("oci-free-tier.yaml"))
    srv = kube_api(ready_after=3600)
    fetched = wire(box, srv)
    render_tree(box)
    # Flux reconciles while the ready step waits: on its first retry, however long that took.
    box.conns.retry.wait = Policy(base=0.01, cap=0.05, deadline=120)
    box.on_event = lambda kind, f: setattr(srv.state, "ready_after", 0.0) if kind == "retry" and f.get("step") == "gitops/main/ready" else None
    await box.run(gitops.steps(box.spec, box.gitops_hooks))
    secret = srv.state.objects[("/api/v1", "flux-system", "secrets")]["sops-age"]
    assert base64.b64decode(secret["data"]["age.agekey"]).decode().startswith("AGE-SECRET-KEY-")
    assert "flux-system" in srv.state.objects[("/apis/kustomize.toolkit.fluxcd.io/v1", "flux-system", "kustomizations")]
    assert fetched == ["https://github.com/fluxcd/flux2/releases/download/v2.7.0/install.yaml"]
    assert box.state.get("gitops/main/ready").outputs["ready"] is True
    assert any(kind == "retry" and f["step"] == "gitops/main/ready" for kind, f in box.events)
    # Again: nothing changes.
    box.forget()
    await box.run(gitops.steps(box.spec, box.gitops_hooks))
    assert box.state.get("gitops/main/bootstrap").outputs.get("created", 0) == 0


async def test_not_ready_is_reported_by_name(make_sandbox, kube_api):
    box = make_sandbox(blueprint("oci-free-tier.yaml"))
    srv = kube_api(ready_after=3600)
    wire(box, srv)
    render_tree(box)
    with pytest.raises(StepFailed) as err:
        await box.run(gitops.steps(box.spec, box.gitops_hooks))
    assert "Kustomization flux-system/flux-system: reconciliation in progress" in err.value.message


async def test_missing_tree_asks_for_plan(make_sandbox, kube_api):
    box = make_sandbox(blueprint("oci-free-tier.yaml"))
    wire(box, kube_api())
    with pytest.raises(StepFailed) as err:
        await box.run(gitops.steps(box.spec, box.gitops_hooks))
    assert "tierzero plan" in (err.value.hint or "")


ROOT_APP = """
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: root, namespace: argocd}
spec:
  project: default
  source: {repoURL: "https://github.com/example/homelab-platform", path: clusters/main/apps, targetRevision: main}
  destination: {server: "https://kubernetes.default.svc", namespace: argocd}
"""
ARGO_INSTALL = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: applications.argoproj.io}
spec: {group: argoproj.io, names: {kind: Application, plural: applications}, scope: Namespaced, versions: []}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: argocd-server}
spec: {replicas: 1}
"""


async def test_argocd_bootstrap_and_health(make_sandbox, kube_api):
    data = blueprint("oci-free-tier.yaml")
    data["clusters"][0]["gitops"]["engine"] = "argocd"
    box = make_sandbox(data)
    srv = kube_api()
    wire(box, srv)
    box.conns.fetch = lambda url: ARGO_INSTALL
    base = box.ws.render_dir / "gitops" / "main" / "clusters" / "main"
    (base / "argocd").mkdir(parents=True)
    (base / "argocd" / "namespace.yaml").write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: argocd}\n")
    (base / "argocd" / "kustomization.yaml").write_text(yaml.safe_dump({"resources": ["namespace.yaml", "https://raw.githubusercontent.com/argoproj/argo-cd/v3.1.0/manifests/install.yaml"], "namespace": "argocd"}))
    (base / "root.yaml").write_text(ROOT_APP)
    (base / "kustomization.yaml").write_text(yaml.safe_dump({"resources": ["argocd", "root.yaml"]}))

    key = ("/apis/argoproj.io/v1alpha1", "argocd", "applications")

    def argo_syncs(kind: str, fields: dict) -> None:  # plays the Argo CD controller, once the ready step waits
        if kind == "retry" and fields.get("step") == "gitops/main/ready":
            srv.state.objects[key]["root"]["status"] = {"health": {"status": "Healthy"}, "sync": {"status": "Synced"}}

    box.conns.retry.wait = Policy(base=0.01, cap=0.05, deadline=120)
    box.on_event = argo_syncs
    await box.run(gitops.steps(box.spec, box.gitops_hooks))
    assert any(kind == "retry" and f["step"] == "gitops/main/ready" for kind, f in box.events)
    assert "argocd-server" in srv.state.objects[("/apis/apps/v1", "argocd", "deployments")]
    assert srv.state.objects[("/api/v1", "argocd", "secrets")]["sops-age"]
    assert box.state.get("gitops/main/ready").outputs == {"engine": "argocd", "ready": True}
