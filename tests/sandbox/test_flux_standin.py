"""The Flux stand-in's rules (`tierzero.sandbox.flux`), each against a real Git repository on the
sandbox's Git host and the Kubernetes stand-in: what source-, kustomize- and helm-controller say
and do, in their own words where the research found them."""

from __future__ import annotations

import base64
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncssh
import pytest
import yaml

from tierzero.sandbox.flux import build as kbuild
from tierzero.sandbox.flux.cli import documents
from tierzero.sandbox.flux.controller import FluxController, duration
from tierzero.sandbox.git_forge import GitForge
from tierzero.sandbox.kubernetes import KubeState

URL = "ssh://git@github.com/example/fleet.git"
SRC, KS, HR = "source.toolkit.fluxcd.io/v1", "kustomize.toolkit.fluxcd.io/v1", "helm.toolkit.fluxcd.io/v2"


class Flux:
    def __init__(self, root: Path) -> None:
        self.root = root
        key = asyncssh.generate_private_key("ssh-ed25519")
        (root / "id").write_bytes(key.export_private_key())
        (root / "id").chmod(0o600)
        self.forge = GitForge(root / "repos", root / "tls", asyncssh.generate_private_key("ssh-ed25519"), [key.export_public_key().decode()])
        self.repo = self.forge.add_repository(URL)
        port = self.forge.hosts["github.com"].ssh_port
        scan = subprocess.run(["ssh-keyscan", "-p", str(port), "127.0.0.1"], capture_output=True, text=True, check=True).stdout
        self.known_hosts = "".join("github.com " + ln.split(" ", 1)[1] + "\n" for ln in scan.splitlines() if not ln.startswith("#"))
        self.state = KubeState()
        self.controller = FluxController("c", self.state, self.forge, root / "storage", 1 / 60).start()
        self.work = root / "work"
        subprocess.run(["git", "init", "-q", "-b", "main", str(self.work)], check=True)

    def push(self, files: dict[str, str], message: str = "change") -> str:
        for path, text in files.items():
            target = self.work / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t", "PATH": "/usr/bin:/bin",
               "GIT_SSH_COMMAND": f"ssh -i {self.root / 'id'} -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"}
        subprocess.run(["git", "add", "-A"], cwd=self.work, check=True)
        subprocess.run(["git", "commit", "-qm", message], cwd=self.work, check=True, env=env)
        subprocess.run(["git", "push", "-q", self.forge.resolve(URL).url, "main"], cwd=self.work, check=True, env=env)  # type: ignore[union-attr]
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=self.work, capture_output=True, text=True, check=True).stdout.strip()

    def install(self) -> None:
        for doc in sorted(documents(), key=lambda d: d["kind"] != "CustomResourceDefinition"):
            self.state.apply(doc, "test")

    def apply(self, text: str) -> None:
        for doc in yaml.safe_load_all(text):
            if doc:
                self.state.apply(doc, "test")

    def secret(self, **data: str) -> None:
        self.state.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "flux-system"}}, "test")  # as `flux install` makes it first
        self.state.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "flux-system", "namespace": "flux-system"},
                          "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}, "test")

    def sync(self, path: str = "./clusters/c", extra: str = "") -> None:
        self.apply(f"""apiVersion: {SRC}
kind: GitRepository
metadata: {{name: flux-system, namespace: flux-system}}
spec: {{url: "{URL}", interval: 1m, ref: {{branch: main}}, secretRef: {{name: flux-system}}}}
---
apiVersion: {KS}
kind: Kustomization
metadata: {{name: flux-system, namespace: flux-system}}
spec: {{path: {path}, interval: 10m, prune: true, sourceRef: {{kind: GitRepository, name: flux-system}}{extra}}}
""")

    def ready(self, name: str, kind: str = "Kustomization", api: str = KS) -> dict[str, Any]:
        obj = self.state.read(api, kind, name, "flux-system") or {}
        return next((c for c in (obj.get("status") or {}).get("conditions", []) if c["type"] == "Ready"), {})

    def until(self, check: Callable[[], bool], deadline: float = 20.0) -> None:
        end = time.monotonic() + deadline
        while not check():  # read outside the lock: the reads take it
            assert time.monotonic() < end, f"timed out; last Ready: {self.ready('flux-system')}; errors: {self.controller.errors}"
            with self.state.changes:
                self.state.changes.wait(0.1)

    def stop(self) -> None:
        self.controller.stop()
        self.forge.stop()


@pytest.fixture
def flux(tmp_path: Path) -> Iterator[Flux]:
    made = Flux(tmp_path)
    yield made
    made.stop()


def configmap(name: str, ns: str = "default") -> str:
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: {ns}}}\ndata: {{k: v}}\n"


def test_nothing_runs_before_flux_is_installed_then_the_revision_is_the_branch_commit(flux: Flux) -> None:
    commit = flux.push({"clusters/c/cm.yaml": configmap("one")})
    for doc in documents():  # the CRDs alone: the API serves the kinds, no controller runs yet
        if doc["kind"] == "CustomResourceDefinition":
            flux.state.apply(doc, "test")
    flux.secret(identity=(flux.root / "id").read_text(), known_hosts=flux.known_hosts)
    flux.sync()
    looked = flux.controller.ticks
    flux.until(lambda: flux.controller.ticks >= looked + 2)  # the loop has looked at these objects since
    assert flux.ready("flux-system", "GitRepository", SRC) == {}  # no source-controller Deployment: nobody writes status
    flux.install()
    revision = f"main@sha1:{commit}"
    flux.until(lambda: flux.ready("flux-system").get("status") == "True")
    repo = flux.state.read(SRC, "GitRepository", "flux-system", "flux-system")
    assert repo["status"]["artifact"]["revision"] == revision
    assert flux.ready("flux-system", "GitRepository", SRC)["message"] == f"stored artifact for revision '{revision}'"
    ks = flux.state.read(KS, "Kustomization", "flux-system", "flux-system")
    assert ks["status"]["lastAppliedRevision"] == revision and ks["status"]["observedGeneration"] == ks["metadata"]["generation"]
    assert ks["status"]["inventory"]["entries"] == [{"id": "default_one__ConfigMap", "v": "v1"}]
    assert flux.state.read("v1", "ConfigMap", "one", "default")["metadata"]["labels"]["kustomize.toolkit.fluxcd.io/name"] == "flux-system"
    # A new commit, a reconcile requested: the change is applied, the old object pruned.
    second = flux.push({"clusters/c/cm.yaml": configmap("two")})
    flux.apply(f"apiVersion: {SRC}\nkind: GitRepository\nmetadata: {{name: flux-system, namespace: flux-system, annotations: {{reconcile.fluxcd.io/requestedAt: x}}}}\n"
               f"spec: {{url: \"{URL}\", interval: 1m, ref: {{branch: main}}, secretRef: {{name: flux-system}}}}\n")
    flux.until(lambda: flux.ready("flux-system").get("message") == f"Applied revision: main@sha1:{second}")
    assert flux.state.read("v1", "ConfigMap", "one", "default") is None and flux.state.read("v1", "ConfigMap", "two", "default") is not None
    assert flux.state.read(SRC, "GitRepository", "flux-system", "flux-system")["status"]["lastHandledReconcileAt"] == "x"


@pytest.mark.parametrize("secret, reason, message", [
    (None, "AuthenticationFailed", "failed to get secret 'flux-system/flux-system': secrets \"flux-system\" not found"),
    ({"known_hosts": "x"}, "AuthenticationFailed", "failed to configure authentication options: invalid 'ssh' auth option: 'identity' is required"),
    ({"identity": "KEY"}, "AuthenticationFailed", "failed to configure authentication options: invalid 'ssh' auth option: 'known_hosts' is required"),
])
def test_source_credentials(flux: Flux, secret: dict[str, str] | None, reason: str, message: str) -> None:
    flux.push({"clusters/c/cm.yaml": configmap("one")})
    flux.install()
    if secret is not None:
        flux.secret(**{k: (flux.root / "id").read_text() if v == "KEY" else v for k, v in secret.items()})
    flux.sync()
    flux.until(lambda: flux.ready("flux-system", "GitRepository", SRC).get("reason") == reason)
    assert flux.ready("flux-system", "GitRepository", SRC)["message"] == message
    assert flux.ready("flux-system")["message"] == "Source artifact not found, retrying in 30s"


def test_an_empty_repository_a_missing_branch_and_an_unknown_host_key(flux: Flux) -> None:
    flux.install()
    flux.secret(identity=(flux.root / "id").read_text(), known_hosts=flux.known_hosts)
    flux.sync()
    flux.until(lambda: flux.ready("flux-system", "GitRepository", SRC).get("reason") == "EmptyGitRepository")
    assert flux.ready("flux-system", "GitRepository", SRC)["message"] == "git repository is empty"
    flux.push({"x": "y"})
    flux.apply(f"apiVersion: {SRC}\nkind: GitRepository\nmetadata: {{name: flux-system, namespace: flux-system}}\n"
               f"spec: {{url: \"{URL}\", interval: 1m, ref: {{branch: nope}}, secretRef: {{name: flux-system}}}}\n")
    flux.until(lambda: flux.ready("flux-system", "GitRepository", SRC).get("reason") == "GitOperationFailed")
    assert flux.ready("flux-system", "GitRepository", SRC)["message"] == (
        f"failed to checkout and determine revision: unable to clone '{URL}': couldn't find remote ref \"refs/heads/nope\"")
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    flux.secret(identity=(flux.root / "id").read_text(), known_hosts=f"github.com {other}")
    flux.apply(f"apiVersion: {SRC}\nkind: GitRepository\nmetadata: {{name: flux-system, namespace: flux-system}}\n"
               f"spec: {{url: \"{URL}\", interval: 1m, ref: {{branch: main}}, secretRef: {{name: flux-system}}}}\n")
    flux.until(lambda: "Host key verification failed" in flux.ready("flux-system", "GitRepository", SRC).get("message", ""))


def test_suspended_objects_are_left_alone_and_unplayed_fields_refused(flux: Flux) -> None:
    flux.push({"clusters/c/cm.yaml": configmap("one")})
    flux.install()
    flux.secret(identity=(flux.root / "id").read_text(), known_hosts=flux.known_hosts)
    flux.sync(extra=", targetNamespace: apps")
    flux.until(lambda: flux.ready("flux-system").get("reason") == "NotPlayedInSandbox")
    assert flux.ready("flux-system")["message"] == "sandbox: spec.targetNamespace is not played by the Flux stand-in"
    flux.sync(extra=", suspend: true")
    looked = flux.controller.ticks
    flux.until(lambda: flux.controller.ticks >= looked + 2)
    assert flux.ready("flux-system")["reason"] == "NotPlayedInSandbox"  # suspended: its status stays as it was
    assert flux.state.read("v1", "ConfigMap", "one", "default") is None


def test_sops_needs_decryption_and_its_secret(flux: Flux) -> None:
    import pyrage

    from tierzero.adapters.sops import encrypt

    identity = pyrage.x25519.Identity.generate()
    secret = encrypt(b"apiVersion: v1\nkind: Secret\nmetadata: {name: db, namespace: default}\nstringData: {password: pw}\n",
                     str(identity.to_public()), encrypted_regex="^(data|stringData)$").decode()
    flux.push({"clusters/c/db.sops.yaml": secret})
    flux.install()
    flux.secret(identity=(flux.root / "id").read_text(), known_hosts=flux.known_hosts)
    flux.sync()
    flux.until(lambda: flux.ready("flux-system").get("reason") == "ReconciliationFailed")
    assert flux.ready("flux-system")["message"] == ("Secret/default/db is SOPS encrypted, configuring decryption is required for this "
                                                     "secret to be reconciled")
    flux.sync(extra=", decryption: {provider: sops, secretRef: {name: sops-age}}")
    flux.until(lambda: flux.ready("flux-system").get("reason") == "BuildFailed")
    assert flux.ready("flux-system")["message"] == 'secrets "sops-age" not found'
    flux.state.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "sops-age", "namespace": "flux-system"},
                      "data": {"age.agekey": base64.b64encode(f"{identity}\n".encode()).decode()}}, "test")
    flux.sync(extra=", decryption: {provider: sops, secretRef: {name: sops-age}}, interval: 11m")
    flux.until(lambda: flux.ready("flux-system").get("status") == "True")
    db = flux.state.read("v1", "Secret", "db", "default")
    assert base64.b64decode(db["data"]["password"]) == b"pw" and "sops" not in db


def test_helm_releases_are_checked_not_run(flux: Flux) -> None:
    flux.push({"clusters/c/hr.yaml": f"""apiVersion: {SRC}
kind: HelmRepository
metadata: {{name: jetstack, namespace: flux-system}}
spec: {{url: https://charts.jetstack.io, interval: 12h}}
---
apiVersion: {HR}
kind: HelmRelease
metadata: {{name: cert-manager, namespace: flux-system}}
spec: {{interval: 30m, chart: {{spec: {{chart: cert-manager, version: v1.19.1, sourceRef: {{kind: HelmRepository, name: jetstack}}}}}}}}
---
apiVersion: {HR}
kind: HelmRelease
metadata: {{name: issuer, namespace: flux-system}}
spec: {{interval: 30m, dependsOn: [{{name: cert-manager}}], chart: {{spec: {{chart: x, sourceRef: {{kind: HelmRepository, name: missing}}}}}}}}
"""})
    flux.install()
    flux.secret(identity=(flux.root / "id").read_text(), known_hosts=flux.known_hosts)
    flux.sync()
    flux.until(lambda: flux.ready("issuer", "HelmRelease", HR).get("reason") == "ArtifactFailed")
    assert flux.ready("issuer", "HelmRelease", HR)["message"] == "HelmRepository 'flux-system/missing' not found"
    done = flux.ready("cert-manager", "HelmRelease", HR)
    assert done["status"] == "True" and done["reason"] == "NotRunInSandbox" and "chart cert-manager@v1.19.1 was not installed" in done["message"]
    assert flux.state.resource("cert-manager.io/v1", "ClusterIssuer") is not None  # what the chart's CRDs would serve
    assert flux.ready("jetstack", "HelmRepository", SRC)["message"].startswith("sandbox: https://charts.jetstack.io is on the internet")


def write(root: Path, files: dict[str, str]) -> Path:
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    return root


def ids(objects: list[kbuild.Resource]) -> list[str]:
    return [r.id for r in objects]


def test_build_with_and_without_a_kustomization(tmp_path: Path) -> None:
    root = write(tmp_path, {
        "gen/b.yaml": configmap("b"), "gen/a.yml": configmap("a"), "gen/notes.txt": "x", "gen/sub/c.yaml": configmap("c"),
        "gen/kdir/kustomization.yaml": "resources: [d.yaml]\nnamespace: other\n", "gen/kdir/d.yaml": configmap("d"),
        "gen/kdir/ignored.yaml": configmap("ignored"),
        "k/kustomization.yaml": "resources: [x.yaml, ../gen/kdir]\nnamespace: team\n", "k/x.yaml": configmap("x") + "---\n"
        + "apiVersion: v1\nkind: Namespace\nmetadata: {name: team}\n",
    })
    assert ids(kbuild.build(root, "./gen")) == ["ConfigMap.v1.[noGrp]/a.default", "ConfigMap.v1.[noGrp]/b.default",
                                               "ConfigMap.v1.[noGrp]/d.other", "ConfigMap.v1.[noGrp]/c.default"]
    assert ids(kbuild.build(root, "k")) == ["ConfigMap.v1.[noGrp]/x.team", "Namespace.v1.[noGrp]/team.[noNs]", "ConfigMap.v1.[noGrp]/d.team"]


@pytest.mark.parametrize("files, message", [
    ({"kustomization.yaml": "resources: [gone.yaml]\n"}, "kustomize build failed: accumulating resources: accumulation err='accumulating resources from 'gone.yaml': open "),
    ({"kustomization.yaml": "resources: [https://example.com/x.yaml]\n"}, "kustomize build failed: accumulating resources: https://example.com/x.yaml: remote resources are fetched from the internet"),
    ({"kustomization.yaml": "resources: [a.yaml, b.yaml]\n", "a.yaml": configmap("same"), "b.yaml": configmap("same")},
     "kustomize build failed: may not add resource with an already registered id: ConfigMap.v1.[noGrp]/same.default"),
    ({"kustomization.yaml": "resources: [a.yaml]\nimages: [{name: x}]\n", "a.yaml": configmap("a")}, "kustomize build failed: kustomization.yaml: fields images are not played"),
    ({"a.yaml": "key: [unclosed\n"}, "failed to decode Kubernetes YAML from "),
])
def test_build_failures_in_kustomizes_words(tmp_path: Path, files: dict[str, str], message: str) -> None:
    with pytest.raises(kbuild.BuildError) as err:
        kbuild.build(write(tmp_path, files), ".")
    assert str(err.value).startswith(message), str(err.value)


def test_patches_strategic_merge_and_json6902(tmp_path: Path) -> None:
    root = write(tmp_path, {
        "kustomization.yaml": """resources: [a.yaml]
patches:
  - patch: |
      apiVersion: v1
      kind: ConfigMap
      metadata: {name: a}
      data: {extra: "1"}
  - target: {kind: ConfigMap, name: a}
    patch: |
      - {op: replace, path: /data/k, value: patched}
""", "a.yaml": configmap("a")})
    (obj,) = kbuild.build(root, ".")
    assert obj.obj["data"] == {"k": "patched", "extra": "1"}


DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    spec:
      containers:
        - {name: app, image: app:1, env: [{name: A, value: "1"}], ports: [{containerPort: 80}]}
        - {name: sidecar, image: side:1}
      tolerations: [{key: a, operator: Exists}]
"""


def test_strategic_merge_merges_built_in_lists_by_their_merge_key(tmp_path: Path) -> None:
    """api/core/v1/types.go: containers and env merge by name, ports by containerPort; tolerations
    (no merge strategy) are replaced; `$patch: delete` removes an item."""
    root = write(tmp_path, {"kustomization.yaml": """resources: [d.yaml]
patches:
  - patch: |
      apiVersion: apps/v1
      kind: Deployment
      metadata: {name: web}
      spec:
        template:
          spec:
            containers:
              - {name: app, image: app:2, env: [{name: B, value: "2"}], ports: [{containerPort: 80, name: http}]}
              - {name: sidecar, $patch: delete}
              - {name: extra, image: extra:1}
            tolerations: [{key: b, operator: Exists}]
""", "d.yaml": DEPLOYMENT})
    (obj,) = kbuild.build(root, ".")
    spec = obj.obj["spec"]["template"]["spec"]
    assert [c["name"] for c in spec["containers"]] == ["app", "extra"]
    app = spec["containers"][0]
    assert app["image"] == "app:2" and app["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    assert app["ports"] == [{"containerPort": 80, "name": "http"}]
    assert spec["tolerations"] == [{"key": "b", "operator": "Exists"}]


def test_a_custom_resources_lists_are_replaced_and_unplayed_directives_refused(tmp_path: Path) -> None:
    root = write(tmp_path, {"kustomization.yaml": """resources: [w.yaml]
patches:
  - patch: |
      apiVersion: example.com/v1
      kind: Widget
      metadata: {name: w}
      spec: {containers: [{name: b}]}
""", "w.yaml": "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\nspec: {containers: [{name: a}]}\n"})
    (obj,) = kbuild.build(root, ".")
    assert obj.obj["spec"]["containers"] == [{"name": "b"}]  # no strategic merge on custom resources
    refused = write(tmp_path / "r", {"kustomization.yaml": """resources: [d.yaml]
patches:
  - patch: |
      apiVersion: apps/v1
      kind: Deployment
      metadata: {name: web}
      spec: {template: {spec: {$retainKeys: [containers]}}}
""", "d.yaml": DEPLOYMENT})
    with pytest.raises(kbuild.BuildError, match="not played"):
        kbuild.build(refused, ".")


def test_durations_as_go_writes_them() -> None:
    assert duration("1m") == 60 and duration("10m0s") == 600 and duration("1h30m") == 5400 and duration("500ms") == 0.5 and duration(None, 7) == 7
