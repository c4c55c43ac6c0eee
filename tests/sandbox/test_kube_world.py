"""The Kubernetes stand-in's world document: objects and resourceVersions survive a restart or a
kill of the sandbox, reached through the real client."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyrage
import pytest

from tierzero.spec.models import Node
from tierzero.adapters.connections import Connections
from tierzero.adapters.kubernetes import Kube
from tierzero.sandbox import kubernetes
from tierzero.sandbox.context import SandboxContext, SandboxOptions
from tierzero.sandbox.world import World

FLUX = "kustomize.toolkit.fluxcd.io/v1"


def configmap(name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "apps"}, "data": data}


def kustomization(name: str) -> dict[str, Any]:
    return {"apiVersion": FLUX, "kind": "Kustomization", "metadata": {"name": name, "namespace": "flux-system"},
            "spec": {"path": f"./{name}", "interval": "10m", "sourceRef": {"kind": "GitRepository", "name": "flux-system"}}}


def kustomization_crd() -> dict[str, Any]:
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "kustomizations.kustomize.toolkit.fluxcd.io"},
            "spec": {"group": "kustomize.toolkit.fluxcd.io", "scope": "Namespaced", "names": {"kind": "Kustomization", "plural": "kustomizations"},
                     "versions": [{"name": "v1", "served": True, "storage": True, "subresources": {"status": {}}}]}}


READY = {"conditions": [{"type": "Ready", "status": "True", "reason": "ReconciliationSucceeded", "message": "Applied revision: main@sha1:1"}]}


def rv(obj: dict[str, Any] | None) -> int:
    assert obj is not None
    return int(obj["metadata"]["resourceVersion"])


class Run:
    """One sandbox run of the Kubernetes stand-in on a world directory."""

    def __init__(self, root: Path, identity: str, node_names: list[str]) -> None:
        nodes = [("controlplane" if n.startswith("cp") else "worker", Node(name=n, node="pve1")) for n in node_names]
        cluster = SimpleNamespace(name="lab", nodes=lambda: nodes, gitops=SimpleNamespace(path="clusters/lab"), kubernetes_semver="1.36.2",
                                  talos_version="v1.13.9")
        self.world = World(root / "world", identity)
        self.box = SandboxContext(SimpleNamespace(clusters=[cluster]), None, Connections(target="sandbox"), root,
                                  options=SandboxOptions(), world=self.world)
        self._stop: Callable[[], None] | None = kubernetes.STANDIN.start(self.box)
        self.kube = Kube.connect(self.box.connections, "lab")
        _STATES[self.kube.endpoint.port] = self.box[kubernetes.SERVERS]["lab"].state

    def stop(self) -> None:
        if self._stop is not None:
            self._stop()
            self._stop = None


@pytest.fixture
def runs(tmp_path: Path) -> Iterator[Callable[..., Run]]:
    identity = str(pyrage.x25519.Identity.generate())
    started: list[Run] = []

    def start(nodes: list[str] = ["cp1"]) -> Run:  # noqa: B006 - never mutated
        started.append(Run(tmp_path, identity, nodes))
        return started[-1]

    yield start
    for run in started:
        run.stop()
        run.kube.close()


_STATES: dict[int, Any] = {}


def kubernetes_state(kube: Kube) -> Any:
    return _STATES[kube.endpoint.port]


def populate(kube: Kube) -> dict[str, dict[str, Any]]:
    kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "apps"}})
    kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "flux-system"}})
    kube.apply(configmap("settings", mode="one"))
    kube.apply(configmap("doomed", mode="gone"))
    assert kube.delete(configmap("doomed"))
    kube.apply(kustomization_crd())
    kube.apply(kustomization("apps"))
    assert not kube.is_ready(FLUX, "Kustomization", "apps")  # no controller has written its status
    state = kubernetes_state(kube)
    assert state.write_status(FLUX, "Kustomization", "apps", "flux-system", READY)
    _, replaced = kube.apply(configmap("settings", mode="two"))
    return {"settings": replaced, "apps": kube.get(FLUX, "Kustomization", "apps", "flux-system") or {}}


def assert_restored(kube: Kube, before: dict[str, dict[str, Any]]) -> None:
    settings = kube.get("v1", "ConfigMap", "settings", "apps")
    assert settings is not None and settings["data"] == {"mode": "two"}
    assert settings["metadata"]["resourceVersion"] == before["settings"]["metadata"]["resourceVersion"]
    assert settings["metadata"]["uid"] == before["settings"]["metadata"]["uid"]
    assert kube.get("v1", "ConfigMap", "doomed", "apps") is None
    assert kube.get("v1", "Namespace", "apps") is not None
    assert kube.is_ready(FLUX, "Kustomization", "apps")  # the status its controller wrote survives too
    assert kube.apply(configmap("settings", mode="two"))[0] == "unchanged"

    highest = max(rv(before["settings"]), rv(before["apps"]))
    _, created = kube.apply(configmap("fresh", mode="new"))
    assert rv(created) > highest
    _, replaced = kube.apply(configmap("settings", mode="three"))
    assert rv(replaced) > rv(created)


def test_a_second_run_finds_the_objects_of_the_first(runs) -> None:
    first = runs()
    before = populate(first.kube)
    first.stop()
    assert_restored(runs().kube, before)


def test_a_killed_run_is_restored_from_what_it_saved(runs) -> None:
    first = runs()  # never stopped before the second starts: its last saves are all there is
    before = populate(first.kube)
    assert_restored(runs().kube, before)


def test_spec_nodes_are_merged_with_the_saved_ones(runs) -> None:
    first = runs(["cp1", "w1"])
    uid = first.kube.get("v1", "Node", "cp1")["metadata"]["uid"]
    first.stop()

    second = runs(["cp1", "w2"])  # w1 left the spec, w2 joined it: the world still has w1
    assert sorted(n.name for n in second.kube.nodes()) == ["cp1", "w1", "w2"]
    assert second.kube.get("v1", "Node", "cp1")["metadata"]["uid"] == uid
    assert second.kube.get(FLUX, "Kustomization", "flux-system", "flux-system") is None  # nothing installs Flux but tierzero


def test_the_document_is_encrypted_and_private(runs, tmp_path) -> None:
    run = runs()
    run.kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "apps"}})
    run.kube.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "token", "namespace": "apps"},
                    "stringData": {"token": "s3cr3t-sandbox-token-value"}})

    path = tmp_path / "world" / "kubernetes-lab.json.age"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    blob = path.read_bytes()
    assert b"s3cr3t-sandbox-token-value" not in blob and b"Secret" not in blob
    saved = run.world.file("kubernetes-lab").load()
    import base64

    assert saved is not None and base64.b64encode(b"s3cr3t-sandbox-token-value").decode() in str(saved["objects"])
