"""The GitOps handover against the sandbox's Git host and Flux stand-in, through the real engine:
the tree reaches the remote, Flux installs from what was committed, and readiness comes from
what is really in Git. Each fault ends in a message naming the file or object, and the remote
holds either the old commit or the whole new one."""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tierzero.phases.validate import _flux_row
from tierzero.render.gitops.versions import FLUX_VERSION

from gitops_world import GitopsWorld

HR = "helm.toolkit.fluxcd.io/v2"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[GitopsWorld]:
    made = GitopsWorld(tmp_path / "p")
    yield made
    made.close()


def validate_row(w: GitopsWorld):
    from tierzero.adapters.kubernetes import Kube
    from tierzero.engine.step import StepContext
    from tierzero.workspace.secrets import WorkspaceSecrets

    spec = w.spec
    ctx = StepContext(spec=spec, workspace=w.ws, target="sandbox", connections=w.conns, secrets=WorkspaceSecrets(w.ws, w.root), outputs={})
    return _flux_row(ctx, Kube.connect(w.conns, "main"), spec.clusters[0])


async def test_the_tree_reaches_git_and_flux_reconciles_it_by_name(world: GitopsWorld) -> None:
    assert world.head() == ""  # the repository the user created: empty
    await world.deploy()
    push = world.output("gitops/main/push")
    head = world.head()
    assert push["pushed"] is True and push["revision"] == f"main@sha1:{head}"
    tree = set(world.git("ls-tree", "-r", "--name-only", "main", cwd=world.repo()).split())
    rendered = {p.relative_to(world.ws.render_dir / "gitops" / "main").as_posix()
                for p in (world.ws.render_dir / "gitops" / "main").rglob("*") if p.is_file()}
    assert tree == rendered | {"clusters/main/flux-system/gotk-components.yaml"}
    assert world.commits() == [f"{head} main: GitOps tree from tierzero.yaml ({len(tree)} files)"]
    # Flux was installed from what was committed: its Deployments and CRDs, the deploy key in the flux-system Secret.
    assert world.kube.read("apps/v1", "Deployment", "kustomize-controller", "flux-system") is not None
    secret = world.kube.read("v1", "Secret", "flux-system", "flux-system")
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert data["identity"].startswith("-----BEGIN OPENSSH PRIVATE KEY-----") and data["known_hosts"].startswith("github.com ssh-ed25519 ")
    key = world.output("gitops/main/deploy-key")
    assert key["registered"] == "created" and data["identity.pub"].strip() == key["public_key"]
    assert [(k.title, k.read_only) for k in world.forge.deploy_keys(next(iter(world.forge.repos.values())))] == [(key["title"], True)]
    assert any("first contact with github.com: pinned its SSH host key (ED25519 SHA256:" in m for m in world.logs())
    ready = world.output("gitops/main/ready")
    assert ready["revision"] == push["revision"]
    assert ready["kustomizations"] == ["apps", "flux-system", "infra-configs", "infra-controllers", "oci-cloud-controller-manager"]
    assert ready["helmreleases"] == ["cert-manager", "ingress-nginx"]
    for name in ("flux-system", "infra-controllers", "infra-configs", "apps"):
        status = world.flux_object(name)["status"]
        assert status["lastAppliedRevision"] == push["revision"]
        assert world.ready(name)["message"] == f"Applied revision: {push['revision']}"
    assert world.ready("flux-system", "GitRepository", "source.toolkit.fluxcd.io/v1")["message"] == f"stored artifact for revision '{push['revision']}'"
    # The SOPS-encrypted Secret was decrypted with the in-cluster sops-age key and applied.
    ccm = world.kube.read("v1", "Secret", "oci-cloud-controller-manager", "kube-system")
    assert "ENC[" not in base64.b64decode(ccm["data"]["cloud-provider.yaml"]).decode()
    assert ccm["metadata"]["labels"]["kustomize.toolkit.fluxcd.io/name"] == "infra-controllers"
    row = validate_row(world)
    assert row.status == "pass" and f"at {push['revision']}" in row.evidence
    assert "5/5 Kustomizations Ready (apps, flux-system, infra-configs, infra-controllers, oci-cloud-controller-manager [NotRunInSandbox])" in row.evidence
    assert "2/2 HelmReleases Ready (cert-manager [NotRunInSandbox], ingress-nginx [NotRunInSandbox])" in row.evidence
    assert world.controller.errors == []


async def test_nothing_changed_pushes_nothing(world: GitopsWorld) -> None:
    await world.deploy()
    before = world.commits()
    world.events.clear()
    await world.deploy()
    started = [f["step"] for kind, f in world.events if kind == "step_started"]
    assert started == ["gitops/main/push"]  # every deploy looks at the remote; nothing else had a reason to run
    assert world.output("gitops/main/push")["pushed"] is False and world.commits() == before


async def test_a_spec_change_is_one_commit_that_flux_applies(world: GitopsWorld) -> None:
    await world.deploy()
    world.edit_spec(lambda d: d["clusters"][0]["addons"]["cert_manager"].update(acme_email="ops@example.org"))
    await world.deploy()
    commits = world.commits()
    assert len(commits) == 2
    assert commits[0].split(" ", 1)[1] == "main: update infrastructure/configs/cert-manager.yaml"
    body = world.git("log", "-1", "--format=%B", "main", cwd=world.repo())
    assert "changed: infrastructure/configs/cert-manager.yaml" in body and "Tierzero-Cluster: main" in body
    revision = f"main@sha1:{world.head()}"
    assert world.output("gitops/main/ready")["revision"] == revision
    issuer = world.kube.read("cert-manager.io/v1", "ClusterIssuer", "letsencrypt-production")
    assert issuer["spec"]["acme"]["email"] == "ops@example.org"
    assert revision in validate_row(world).evidence


async def test_a_file_deleted_by_hand_in_the_remote_comes_back(world: GitopsWorld) -> None:
    await world.deploy()
    world.by_hand(lambda w: (w / "infrastructure/controllers/namespaces.yaml").unlink(), "Remove namespaces")
    await world.deploy()
    commits = world.commits()
    assert commits[0].split(" ", 1)[1] == "main: restore 1 file deleted outside tierzero (infrastructure/controllers/namespaces.yaml)"
    assert commits[1].split(" ", 1)[1] == "Remove namespaces"  # Alice's commit stays in the history
    assert "infrastructure/controllers/namespaces.yaml" in world.git("ls-tree", "-r", "--name-only", "main", cwd=world.repo())
    assert world.output("gitops/main/ready")["revision"] == f"main@sha1:{world.head()}"


async def test_a_foreign_commit_is_refused_by_name_then_forced_over(world: GitopsWorld) -> None:
    await world.deploy()
    before = world.by_hand(lambda w: (w / "apps/hello.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: hello, namespace: default}\n"),
                           "Add hello")
    world.edit_spec(lambda d: d["clusters"][0]["addons"]["cert_manager"].update(acme_email="ops@example.org"))
    failed = await world.failure()
    assert failed.step_id == "gitops/main/push"
    assert "has 1 commit(s) tierzero did not make" in failed.cause and f"{before[:12]} 'Add hello' by Alice <alice@example.com>" in failed.cause
    assert "added: apps/hello.yaml" in failed.cause and "Nothing was pushed" in failed.cause
    assert "tierzero deploy --force" in (failed.hint or "") and "merge them into tierzero.yaml" in (failed.hint or "")
    assert world.head() == before  # nothing half-pushed
    await world.deploy(force=True)
    commits = world.commits()
    assert commits[1].startswith(before) and "pushed with --force" in world.git("log", "-1", "--format=%B", "main", cwd=world.repo())
    assert "apps/hello.yaml" not in world.git("ls-tree", "-r", "--name-only", "main", cwd=world.repo())


async def test_plaintext_secrets_are_refused_before_anything_is_pushed(world: GitopsWorld) -> None:
    await world.deploy()
    before = world.head()
    render = world.ws.render_dir / "gitops" / "main"

    def leak() -> None:
        world.render()
        (render / "apps/leak.yaml").write_text("apiVersion: v1\nkind: Secret\nmetadata: {name: db, namespace: default}\nstringData: {password: hunter2}\n")
        (render / "apps/key.txt").write_text(world.ws.ssh_key.read_text())

    leak()
    failed = await world.failure(render=False)
    assert "apps/leak.yaml: Secret default/db: unencrypted values (stringData.password)" in failed.cause
    assert "apps/key.txt: line 1: holds a private key block in plaintext" in failed.cause
    assert "hunter2" not in failed.cause and "nothing was pushed" in (failed.hint or "")
    assert world.head() == before


async def test_an_undecryptable_secret_is_named_by_the_push_and_by_flux(world: GitopsWorld) -> None:
    import pyrage

    from tierzero.adapters.sops import encrypt

    await world.deploy()
    before = world.head()
    stranger = str(pyrage.x25519.Identity.generate().to_public())
    path = "infrastructure/controllers/kube-system.oci-cloud-controller-manager.sops.yaml"
    plain = b"apiVersion: v1\nkind: Secret\nmetadata: {name: oci-cloud-controller-manager, namespace: kube-system}\nstringData: {a: b}\n"
    world.render()
    (world.ws.render_dir / "gitops/main" / path).write_bytes(encrypt(plain, stranger, encrypted_regex="^(data|stringData)$"))
    failed = await world.failure(render=False)
    assert f"{path}: Secret kube-system/oci-cloud-controller-manager: is encrypted to {stranger}" in failed.cause
    assert world.head() == before
    # Someone pushes it anyway: Flux names the object it cannot decrypt, and so does the wait.
    world.by_hand(lambda w: (w / path).write_bytes(encrypt(plain, stranger, encrypted_regex="^(data|stringData)$")), "Rotate the OCI key")
    world.reconcile_now()
    await world.until(lambda: world.ready("infra-controllers")["reason"] == "BuildFailed")
    message = world.ready("infra-controllers")["message"]
    assert message.startswith("decryption failed for 'Secret.v1.[noGrp]/oci-cloud-controller-manager': failed to decrypt and format "
                              "'kube-system/oci-cloud-controller-manager' Secret data: cannot get sops data key: ")
    assert stranger in message
    row = validate_row(world)
    assert row.status == "fail" and "Kustomization flux-system/infra-controllers: BuildFailed: decryption failed" in row.evidence


async def test_a_missing_path_and_an_invalid_object_are_named(world: GitopsWorld) -> None:
    await world.deploy()
    before = world.head()
    world.render()
    apps = world.ws.render_dir / "gitops/main/clusters/main/apps.yaml"
    apps.write_text(apps.read_text().replace("path: ./apps", "path: ./apps-gone"))
    bad = world.ws.render_dir / "gitops/main/apps/bad.yaml"
    bad.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {namespace: default}\n")
    kust = world.ws.render_dir / "gitops/main/apps/kustomization.yaml"
    kust.write_text(kust.read_text().replace("resources: []", "resources:\n  - bad.yaml"))
    failed = await world.failure(render=False)
    assert "clusters/main/apps.yaml: Kustomization flux-system/apps: spec.path ./apps-gone is not a directory of the tree" in failed.cause
    assert "apps/bad.yaml: ConfigMap default/?: missing metadata.name" in failed.cause
    assert world.head() == before
    # Pushed by hand, Flux says the same of each, and `ready` names them.
    from tierzero.errors import OperationError

    infra = "clusters/main/infrastructure.yaml"
    world.by_hand(lambda w: (w / infra).write_text((w / infra).read_text().replace("path: ./infrastructure/configs", "path: ./infrastructure/gone")),
                  "Move the configs")
    world.reconcile_now()
    await world.until(lambda: world.ready("apps")["reason"] == "DependencyNotReady" and world.ready("infra-configs")["reason"] == "ArtifactFailed")
    with pytest.raises(OperationError) as err:
        await world.wait_ready(deadline=0.5)
    cause = err.value.message
    assert "Kustomization flux-system/infra-configs: ArtifactFailed: kustomization path not found: stat /tmp/kustomization-" in cause
    assert "/infrastructure/gone: no such file or directory" in cause
    assert "Kustomization flux-system/apps: DependencyNotReady: dependency 'flux-system/infra-configs' is not ready" in cause

    def invalid(w: Path) -> None:
        (w / infra).write_text((w / infra).read_text().replace("path: ./infrastructure/gone", "path: ./infrastructure/configs"))
        (w / "infrastructure/configs/bad.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Bad_Name, namespace: default}\n")
        (w / "infrastructure/configs/kustomization.yaml").write_text("resources:\n  - cert-manager.yaml\n  - bad.yaml\n")

    world.by_hand(invalid, "Add a config")
    world.reconcile_now()
    await world.until(lambda: world.ready("infra-configs")["reason"] == "ReconciliationFailed")
    with pytest.raises(OperationError) as err:
        await world.wait_ready(deadline=0.5)
    cause = err.value.message
    assert ('Kustomization flux-system/infra-configs: ReconciliationFailed: ConfigMap/default/Bad_Name dry-run failed (Invalid): '
            'ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain') in cause
    assert world.kube.read("cert-manager.io/v1", "ClusterIssuer", "letsencrypt-production")["metadata"]["generation"] == 1  # nothing half-applied


async def test_a_dependency_not_ready_holds_the_next_layer(world: GitopsWorld) -> None:
    await world.deploy()
    world.by_hand(lambda w: (w / "infrastructure/controllers/namespaces.yaml").write_text("apiVersion: v1\nkind: Nope\nmetadata: {name: x}\n"),
                  "Break the controllers")
    world.reconcile_now()
    seen: set[str] = set()

    def held() -> bool:  # first "revision is not up to date" (the controllers not yet at the new commit), then "not ready"
        seen.add(world.ready("infra-configs")["message"])
        return world.ready("infra-configs")["message"] == "dependency 'flux-system/infra-controllers' is not ready"

    await world.until(held)
    assert seen <= {"dependency 'flux-system/infra-controllers' revision is not up to date", "dependency 'flux-system/infra-controllers' is not ready",
                    f"Applied revision: {world.output('gitops/main/push')['revision']}"}
    assert world.ready("infra-controllers")["message"].startswith('Nope/x dry-run failed: no matches for kind "Nope" in version "v1"')


async def test_without_the_hosts_api_the_deploy_key_is_printed_and_flux_waits_for_it(tmp_path: Path) -> None:
    from tierzero.adapters.retry import Policy

    world = GitopsWorld(tmp_path / "p", git_forge_api=False)
    try:
        world.conns.retry.wait = Policy(base=0.05, cap=0.3, deadline=3)  # Flux's first fetch fails at once
        failed = await world.failure()
        key = world.output("gitops/main/deploy-key")
        assert key["registered"] == "by hand" and key["add_at"].startswith("https://github.com/example/homelab-platform/settings/keys/new")
        assert any(key["public_key"] in m and "add it read-only at" in m for m in world.logs())
        assert failed.step_id == "gitops/main/ready"
        assert "GitRepository flux-system/flux-system: GitOperationFailed: failed to checkout and determine revision: unable to clone " \
               "'ssh://git@github.com/example/homelab-platform.git': " in failed.cause and "Permission denied (publickey)" in failed.cause
        assert "Kustomization flux-system/flux-system: ArtifactFailed: Source artifact not found" in failed.cause
        reason = world.ready("flux-system", "GitRepository", "source.toolkit.fluxcd.io/v1")
        assert reason["reason"] == "GitOperationFailed" and "Permission denied (publickey)" in reason["message"]
        # The user adds the key as told; the next deploy finds Flux reconciled.
        repo = next(iter(world.forge.repos.values()))
        world.forge.add_deploy_key(repo, "flux", key["public_key"], read_only=True, gitea=False)
        world.conns.retry.wait = Policy(base=0.05, cap=0.3, deadline=20)
        await world.deploy()
        assert world.output("gitops/main/ready")["revision"] == f"main@sha1:{world.head()}"
    finally:
        world.close()


async def test_an_https_remote_pushes_with_a_token_and_flux_reads_anonymously(tmp_path: Path) -> None:
    def https(data: dict) -> None:
        data["clusters"][0]["gitops"]["repo_url"] = "https://github.com/example/homelab-platform"

    world = GitopsWorld(tmp_path / "p", edit=https)
    try:
        await world.deploy()
        assert world.forge.pushes == 1 and "gitops/main/deploy-key" not in {s.id for s in __import__("tierzero.phases.gitops", fromlist=["x"]).steps(world.spec)}
        assert world.kube.read("v1", "Secret", "flux-system", "flux-system") is None  # no credentials for a public repository
        assert world.output("gitops/main/ready")["revision"] == f"main@sha1:{world.head()}"
        world.conns.endpoints[("git", "main")].extra["token"] = "wrong"
        world.edit_spec(lambda d: d["clusters"][0]["addons"]["cert_manager"].update(acme_email="ops@example.org"))
        failed = await world.failure()
        assert failed.step_id == "gitops/main/push" and "Authentication failed" in failed.cause and "gitops.token" in (failed.hint or "")
    finally:
        world.close()


async def test_a_changed_host_key_stops_the_push(world: GitopsWorld) -> None:
    await world.deploy()
    pinned = world.ws.root / "git_known_hosts"
    import asyncssh

    pinned.write_text("github.com " + asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode())
    world.edit_spec(lambda d: d["clusters"][0]["addons"]["cert_manager"].update(acme_email="ops@example.org"))
    failed = await world.failure()
    assert failed.step_id == "gitops/main/push" and "Host key verification failed" in failed.cause
    assert "is not the one pinned in" in (failed.hint or "")


def test_flux_components_come_checked_from_the_sandbox_cli(world: GitopsWorld) -> None:
    from tierzero.sandbox.flux.cli import SANDBOX_DIGEST, digest

    assert digest() == SANDBOX_DIGEST  # the recorded sandbox digest is that of the stand-in CLI's output
    assert world.conns.git.extra_digests == {FLUX_VERSION: SANDBOX_DIGEST}
    out = subprocess.run([str(world.conns.git.flux_cli), "install", "--export"], capture_output=True, check=True).stdout
    docs = [d for d in yaml.safe_load_all(out) if d]
    assert all(d["metadata"]["labels"]["tierzero.dev/sandbox-standin"] == "true" for d in docs)
    assert out.startswith(b"---\n# This manifest was generated by flux. DO NOT EDIT.\n# Flux Version: " + FLUX_VERSION.encode())


ARGO_INSTALL = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: applications.argoproj.io}
spec:
  group: argoproj.io
  scope: Namespaced
  names: {kind: Application, plural: applications}
  versions: [{name: v1alpha1, served: true, storage: true}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: argocd-server}
spec: {replicas: 1}
"""


async def test_argocd_gets_the_tree_pushed_and_its_install_from_the_internet_the_test_plays(tmp_path: Path) -> None:
    import asyncio

    world = GitopsWorld(tmp_path / "p", edit=lambda d: d["clusters"][0]["gitops"].update(engine="argocd"))
    fetched: list[str] = []
    world.conns.fetch = lambda url: (fetched.append(url), ARGO_INSTALL)[1]  # the sandbox itself refuses the internet
    try:
        async def argo_syncs() -> None:  # plays the Argo CD controller
            await world.until(lambda: world.kube.read("argoproj.io/v1alpha1", "Application", "root", "argocd") is not None)
            world.kube.write_status("argoproj.io/v1alpha1", "Application", "root", "argocd", {"health": {"status": "Healthy"}, "sync": {"status": "Synced"}})

        controller = asyncio.create_task(argo_syncs())
        await world.deploy()
        await controller
        assert fetched == ["https://raw.githubusercontent.com/argoproj/argo-cd/v3.2.0/manifests/install.yaml"]
        assert "clusters/main/root.yaml" in world.git("ls-tree", "-r", "--name-only", "main", cwd=world.repo())
        assert world.kube.read("apps/v1", "Deployment", "argocd-server", "argocd") is not None
        assert world.output("gitops/main/ready") == {"engine": "argocd", "ready": True}
    finally:
        world.close()


async def test_argocd_in_the_sandbox_is_refused_offline_by_name(tmp_path: Path) -> None:
    world = GitopsWorld(tmp_path / "p", edit=lambda d: d["clusters"][0]["gitops"].update(engine="argocd"))
    try:
        failed = await world.failure()
        assert failed.step_id == "gitops/main/bootstrap"
        assert failed.cause == "the sandbox has no internet: GET https://raw.githubusercontent.com/argoproj/argo-cd/v3.2.0/manifests/install.yaml refused"
    finally:
        world.close()


async def test_two_clusters_share_a_repository_each_in_its_own_path(tmp_path: Path) -> None:
    import copy

    def two(data: dict) -> None:
        first = data["clusters"][0]
        first["gitops"]["path"] = "lab"
        other = copy.deepcopy(first)
        other.update(name="edge", vip=None, endpoint="https://192.168.10.90:6443", workers=[], addons={})
        other["gitops"]["path"] = "edge"
        other["control_planes"] = [{"name": "edge-cp-1", "node": "pve1", "ip": "192.168.10.90/24"}]
        data["clusters"].append(other)

    world = GitopsWorld(tmp_path / "p", blueprint="proxmox", edit=two)
    try:
        await world.deploy()  # both pushes start from the same head: one of them fetches again and goes on top
        tree = world.git("ls-tree", "-r", "--name-only", "main", cwd=world.repo()).split()
        assert "lab/clusters/lab/flux-system/gotk-sync.yaml" in tree and "edge/clusters/edge/flux-system/gotk-sync.yaml" in tree
        assert len(world.commits()) == 2
        for cluster in ("lab", "edge"):
            ready = world.output(f"gitops/{cluster}/ready")
            assert "flux-system" in ready["kustomizations"] and ready["revision"].startswith("main@sha1:")
        assert f"main@sha1:{world.head()}" in {world.output(f"gitops/{c}/ready")["revision"] for c in ("lab", "edge")}
        keys = world.forge.deploy_keys(next(iter(world.forge.repos.values())))
        assert sorted(k.title for k in keys) == ["flux-system-main-flux-system-./clusters/edge", "flux-system-main-flux-system-./clusters/lab"]
    finally:
        world.close()
