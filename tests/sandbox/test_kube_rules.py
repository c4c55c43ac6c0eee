"""The Kubernetes stand-in's rules (see `tierzero.sandbox.kubernetes` and `kube_resources`),
each through the adapter tierzero uses (lightkube): what a fresh cluster holds, custom kinds served only with
their CRD, status as a subresource, generation, merge patch, and the controller calls."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tierzero.adapters.connections import Connections, Endpoint
from tierzero.adapters.kubernetes import Kube
from tierzero.sandbox.kube_resources import merge_patch
from tierzero.sandbox.kubernetes import KubeApiServer, KubeState

GROUP = "kustomize.toolkit.fluxcd.io"
API = f"{GROUP}/v1"


def crd(served: bool = True) -> dict[str, Any]:
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": f"kustomizations.{GROUP}"},
            "spec": {"group": GROUP, "scope": "Namespaced", "names": {"kind": "Kustomization", "plural": "kustomizations"},
                     "versions": [{"name": "v1", "served": served, "storage": True, "subresources": {"status": {}}}]}}


def ks(path: str = "./apps") -> dict[str, Any]:
    return {"apiVersion": API, "kind": "Kustomization", "metadata": {"name": "apps", "namespace": "flux-system"},
            "spec": {"path": path, "interval": "10m", "sourceRef": {"kind": "GitRepository", "name": "flux-system"}}}


@pytest.fixture
def server() -> Iterator[KubeApiServer]:
    srv = KubeApiServer(KubeState()).start()
    yield srv
    srv.stop()


@pytest.fixture
def kube(server: KubeApiServer) -> Iterator[Kube]:
    conns = Connections(target="sandbox")
    conns.add("kubernetes", "c", Endpoint("127.0.0.1", server.port, scheme="http", verify=False))
    client = Kube.connect(conns, "c")
    yield client
    client.close()


def test_a_fresh_cluster_has_only_the_default_namespaces(kube: Kube) -> None:
    names = sorted(n["metadata"]["name"] for n in kube.list("v1", "Namespace", None))
    assert names == ["default", "kube-node-lease", "kube-public", "kube-system"]


def test_a_custom_kind_is_served_only_while_its_crd_serves_it(kube: Kube, server: KubeApiServer) -> None:
    from tierzero.adapters.errors import CallFailed

    kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "flux-system"}})
    with pytest.raises(CallFailed) as err:
        kube.apply(ks())
    assert err.value.status == 404
    kube.apply(crd(served=False))
    assert server.state.resource(API, "Kustomization") is None
    kube.apply(crd(served=True))
    assert kube.apply(ks())[0] == "created"
    assert server.state.resource(API, "Kustomization").plural == "kustomizations"


def test_status_is_a_subresource_and_generation_follows_content(kube: Kube, server: KubeApiServer) -> None:
    kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "flux-system"}})
    kube.apply(crd())
    _, created = kube.apply({**ks(), "status": {"conditions": [{"type": "Ready", "status": "True"}]}})
    assert "status" not in created and created["metadata"]["generation"] == 1  # status on create is ignored
    status = {"conditions": [{"type": "Ready", "status": "False", "reason": "BuildFailed"}]}
    assert server.state.write_status(API, "Kustomization", "apps", "flux-system", status)
    _, labelled = kube.apply({**ks(), "metadata": {**ks()["metadata"], "labels": {"team": "a"}}})
    assert labelled["status"] == status and labelled["metadata"]["generation"] == 1  # metadata only: same generation
    _, moved = kube.apply(ks("./other"))
    assert moved["status"] == status and moved["metadata"]["generation"] == 2


def test_patch_is_a_json_merge_patch(kube: Kube) -> None:
    kube.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "m", "namespace": "default", "annotations": {"a": "1", "b": "2"}},
                "data": {"x": "1"}})
    patched = kube.patch("v1", "ConfigMap", "m", "default", {"metadata": {"annotations": {"b": None, "c": "3"}}})
    assert patched["metadata"]["annotations"] == {"a": "1", "c": "3"} and patched["data"] == {"x": "1"}
    assert merge_patch({"l": [1, 2], "k": {"a": 1}}, {"l": [3], "k": None}) == {"l": [3]}


def test_controller_apply_keeps_status_and_others_labels(server: KubeApiServer) -> None:
    state = server.state
    assert state.apply(crd(), "test") == "created"
    assert state.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "flux-system"}}, "test") == "created"
    obj = ks()
    assert state.apply(obj, "kustomize-controller") == "created"
    assert state.apply(obj, "kustomize-controller") == "unchanged"
    state.write_status(API, "Kustomization", "apps", "flux-system", {"observedGeneration": 1})
    with state.lock:
        state.objects[("/apis/" + API, "flux-system", "kustomizations")]["apps"]["metadata"]["labels"] = {"other": "x"}
    changed = ks("./b")
    changed["metadata"]["labels"] = {"mine": "y"}
    assert state.apply(changed, "kustomize-controller") == "configured"
    got = state.read(API, "Kustomization", "apps", "flux-system")
    assert got["metadata"]["labels"] == {"other": "x", "mine": "y"} and got["status"] == {"observedGeneration": 1}
    assert got["metadata"]["generation"] == 2
    with pytest.raises(LookupError):
        state.apply({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}, "test")
    assert state.remove(API, "Kustomization", "apps", "flux-system") and state.read(API, "Kustomization", "apps", "flux-system") is None


@pytest.mark.parametrize("content_type, message", [
    ("application/json", "the body of the request was in an unknown format - accepted media types include: "),
    ("application/json-patch+json", "a patch type tierzero's Kubernetes stand-in does not play"),
])
def test_a_patch_must_say_it_is_a_merge_patch(kube: Kube, server: KubeApiServer, content_type: str, message: str) -> None:
    import http.client
    import json

    kube.apply(crd())
    kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "flux-system"}})
    kube.apply(ks())
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("PATCH", f"/apis/{API}/namespaces/flux-system/kustomizations/apps", body=json.dumps({"spec": {"path": "./x"}}),
                 headers={"Content-Type": content_type})
    answer = conn.getresponse()
    status = json.loads(answer.read())
    conn.close()
    assert answer.status == 415 and status["reason"] == "UnsupportedMediaType" and message in status["message"]
    assert kube.get(API, "Kustomization", "apps", "flux-system")["spec"]["path"] == "./apps"  # unchanged
    assert kube.patch(API, "Kustomization", "apps", "flux-system", {"spec": {"path": "./x"}})["spec"]["path"] == "./x"


# -- refusals (tierzero.sandbox.kube_admission), the same through HTTP and through KubeState

def _refused(kube: Kube, obj: dict[str, Any]) -> tuple[int | None, str]:
    from tierzero.adapters.errors import CallFailed

    with pytest.raises(CallFailed) as err:
        kube.apply(obj)
    return err.value.status, err.value.message


def test_a_namespaced_object_in_a_missing_namespace_is_404_until_the_namespace_exists(kube: Kube, server: KubeApiServer) -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "m", "namespace": "apps"}, "data": {}}
    status, message = _refused(kube, cm)
    assert status == 404 and 'namespaces "apps" not found' in message
    from tierzero.sandbox.kube_admission import Refusal

    with pytest.raises(Refusal) as refused:  # a controller's apply gets the same answer
        server.state.apply(cm, "test")
    assert (refused.value.code, refused.value.message) == (404, 'namespaces "apps" not found')
    kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "apps"}})
    assert kube.apply(cm)[0] == "created"


@pytest.mark.parametrize(("kind", "api", "name", "why"), [
    ("ConfigMap", "v1", "Bad_Name", "a lowercase RFC 1123 subdomain must consist of"),
    ("Namespace", "v1", "a.b", "must not contain dots"),  # a label, not a subdomain
    ("Namespace", "v1", "x" * 64, "must be no more than 63 characters"),
    ("Service", "v1", "1st", "a DNS-1035 label must consist of"),
    ("Deployment.apps", "apps/v1", "Bad_Name", "a lowercase RFC 1123 subdomain must consist of"),  # the kind qualified by its group
])
def test_an_invalid_name_is_422_by_the_rule_of_its_kind(kube: Kube, kind: str, api: str, name: str, why: str) -> None:
    meta = {"name": name} if kind == "Namespace" else {"name": name, "namespace": "default"}
    status, message = _refused(kube, {"apiVersion": api, "kind": kind.split(".")[0], "metadata": meta})
    assert status == 422 and f'{kind} "{name}" is invalid: metadata.name: Invalid value: "{name}": {why}' in message


def test_a_second_create_is_409_already_exists_naming_the_group_qualified_resource(server: KubeApiServer) -> None:
    # apimachinery api/errors NewAlreadyExists(GroupResource, name): `deployments.apps "web" already exists`;
    # a create without a name: objectmeta.go "name or generateName is required"
    import json
    import urllib.error
    import urllib.request

    def post(path: str, obj: dict[str, Any]) -> tuple[int, str]:
        req = urllib.request.Request(f"http://127.0.0.1:{server.port}{path}", json.dumps(obj).encode(), {"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, ""
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())["message"]

    web = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"}, "spec": {}}
    assert post("/apis/apps/v1/namespaces/default/deployments", web) == (201, "")
    assert post("/apis/apps/v1/namespaces/default/deployments", web) == (409, 'deployments.apps "web" already exists')
    unnamed = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": "default"}}
    assert post("/api/v1/namespaces/default/configmaps", unnamed) == (
        422, 'ConfigMap "" is invalid: metadata.name: Required value: name or generateName is required')


def test_rbac_names_are_path_segments_so_a_colon_is_fine(kube: Kube) -> None:
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "system:flux"}, "rules": []}
    assert kube.apply(role)[0] == "created"
    status, _ = _refused(kube, {**role, "metadata": {"name": "a/b"}})
    assert status == 422


def test_an_update_with_a_stale_resource_version_is_409(kube: Kube, server: KubeApiServer) -> None:
    _, created = kube.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "m", "namespace": "default"}, "data": {"x": "1"}})
    old = created["metadata"]["resourceVersion"]
    kube.patch("v1", "ConfigMap", "m", "default", {"data": {"x": "2"}})  # someone else wrote in between
    from tierzero.adapters.errors import CallFailed

    with pytest.raises(CallFailed) as err:
        kube.patch("v1", "ConfigMap", "m", "default", {"metadata": {"resourceVersion": old}, "data": {"x": "3"}})
    assert err.value.status == 409
    assert 'Operation cannot be fulfilled on configmaps "m": the object has been modified' in err.value.message
    current = server.state.read("v1", "ConfigMap", "m", "default")
    assert current is not None and current["data"] == {"x": "2"}
    fresh = kube.patch("v1", "ConfigMap", "m", "default", {"metadata": {"resourceVersion": current["metadata"]["resourceVersion"]}, "data": {"x": "3"}})
    assert fresh["data"] == {"x": "3"}


def test_the_builtin_table_is_what_the_kubernetes_openapi_says() -> None:
    """kube_builtin's table, derived again: GA group/version/kinds of v1.36's OpenAPI
    (kubernetes-validate), plural and scope from lightkube-models."""
    import importlib
    import inspect
    import json
    import pkgutil
    import re
    from pathlib import Path

    import kubernetes_validate
    import lightkube.resources
    from lightkube.core.resource import NamespacedResource

    from tierzero.sandbox.kube_builtin import BUILTIN

    schema = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema" / "v1.36.0-local" / "_definitions.json"
    gvk = {(x["group"], x["version"], x["kind"]) for d in json.loads(schema.read_text())["$defs"].values()
           for x in d.get("x-kubernetes-group-version-kind", [])}
    derived = {}
    for module in pkgutil.iter_modules(lightkube.resources.__path__):
        for cls in vars(importlib.import_module(f"lightkube.resources.{module.name}")).values():
            info = getattr(cls, "_api_info", None)
            if not inspect.isclass(cls) or info is None or info.action or info.parent or "/" in info.plural:
                continue
            r = info.resource
            if re.fullmatch(r"v\d+", r.version) and (r.group, r.version, r.kind) in gvk:
                derived[(f"{r.group}/{r.version}" if r.group else r.version, r.kind)] = (info.plural, issubclass(cls, NamespacedResource))
    assert len(derived) > 60 and derived == BUILTIN


def test_only_resources_a_stock_server_serves_have_paths(kube: Kube) -> None:
    from tierzero.sandbox.kube_resources import serves

    assert serves("/api/v1", "configmaps", {}) and serves("/apis/apps/v1", "deployments", {})
    assert not serves("/apis/apps/v1", "widgets", {}) and not serves("/api/v1", "nope", {})
    assert not serves("/apis/batch/v1beta1", "cronjobs", {})  # removed in v1.25: only GA versions served
    assert kube.list("apps/v1", "Widget", "default") == []  # 404 -> the adapter's "unknown kind"


def test_the_adapters_replace_reads_again_after_losing_a_race(kube: Kube, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 409 Conflict on PUT means someone wrote since the read: tierzero reads again and retries."""
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "m", "namespace": "default"}, "data": {"x": "1"}}
    _, first = kube.apply(cm)
    kube.patch("v1", "ConfigMap", "m", "default", {"data": {"x": "2"}})  # another writer
    real_get, stale = kube.get, [first]

    def get(*args: Any) -> dict[str, Any] | None:
        return stale.pop() if stale else real_get(*args)  # the first read is from before the other write

    monkeypatch.setattr(kube, "get", get)
    action, obj = kube.apply({**cm, "data": {"x": "3"}})
    assert action == "replaced" and obj["data"] == {"x": "3"} and not stale
