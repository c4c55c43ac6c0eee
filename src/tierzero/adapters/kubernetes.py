"""Kubernetes through the official client, pointed at an endpoint from `Connections`.

The ("kubernetes", CLUSTER) endpoint either names a kubeconfig file (extra["kubeconfig"],
used once it exists: a real run has it after Talos bootstrap) or carries the URL plus optional extra["token"],
extra["cert_file"]/["key_file"] (what the sandbox gives). Calls are blocking; from a step use
`await asyncio.to_thread(kube.nodes)`."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tierzero.adapters import calls
from tierzero.adapters.connections import ClientCache, Connections, Endpoint
from tierzero.adapters.errors import CallFailed, from_kubernetes
from tierzero.adapters.retry import OnRetry, Policy, retry_call
from tierzero.errors import OperationError

_IRREGULAR_PLURALS = {"Kustomization": "kustomizations", "HelmRelease": "helmreleases", "HelmRepository": "helmrepositories",
                      "GitRepository": "gitrepositories", "OCIRepository": "ocirepositories", "Ingress": "ingresses",
                      "NetworkPolicy": "networkpolicies", "StorageClass": "storageclasses", "Endpoints": "endpoints"}
_CLUSTER_SCOPED = {"Namespace", "Node", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "StorageClass",
                   "PersistentVolume", "ClusterIssuer", "PriorityClass", "MutatingWebhookConfiguration",
                   "ValidatingWebhookConfiguration", "IngressClass"}


def plural_of(kind: str) -> str:
    if kind in _IRREGULAR_PLURALS:
        return _IRREGULAR_PLURALS[kind]
    low = kind.lower()
    if low.endswith("y") and low[-2:-1] not in "aeiou":
        return low[:-1] + "ies"
    if low.endswith(("s", "x", "ch", "sh")):
        return low + "es"
    return low + "s"


def object_path(obj: dict[str, Any], *, with_name: bool) -> str:
    api_version, kind = obj["apiVersion"], obj["kind"]
    meta = obj.get("metadata", {})
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    ns = meta.get("namespace") or ("" if kind in _CLUSTER_SCOPED else "default")
    path = f"{base}/namespaces/{ns}/{plural_of(kind)}" if ns else f"{base}/{plural_of(kind)}"
    return f"{path}/{meta['name']}" if with_name else path


def _has_kubeconfig(endpoint: Endpoint) -> bool:
    path = endpoint.extra.get("kubeconfig")
    return bool(path) and Path(str(path)).is_file()


def configuration(endpoint: Endpoint) -> Any:
    from kubernetes import client, config

    cfg = client.Configuration()
    if _has_kubeconfig(endpoint):
        config.load_kube_config(config_file=str(endpoint.extra["kubeconfig"]), context=endpoint.extra.get("context"), client_configuration=cfg)
        return cfg
    cfg.host = endpoint.url
    cfg.verify_ssl = bool(endpoint.verify)
    if isinstance(endpoint.verify, str):
        cfg.ssl_ca_cert = endpoint.verify
    if endpoint.extra.get("token"):
        cfg.api_key = {"authorization": f"Bearer {endpoint.extra['token']}"}
    if endpoint.extra.get("cert_file"):
        cfg.cert_file = endpoint.extra["cert_file"]
        cfg.key_file = endpoint.extra.get("key_file")
    return cfg


@dataclass(frozen=True)
class NodeStatus:
    name: str
    ready: bool
    roles: tuple[str, ...]
    version: str

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ready": self.ready, "roles": list(self.roles), "version": self.version}


class Kube:
    def __init__(self, endpoint: Endpoint) -> None:
        from kubernetes import client

        self.endpoint = endpoint
        self._uses_kubeconfig = _has_kubeconfig(endpoint)
        self.api = client.ApiClient(configuration(endpoint))
        self.core = client.CoreV1Api(self.api)
        send = self.api.call_api  # every request of the client, generated APIs included, goes through it

        def call_api(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            calls.sent("kubernetes", endpoint.url, calls.http_request(method, url))
            return send(method, url, *args, **kwargs)

        self.api.call_api = call_api  # type: ignore[method-assign]  # every request is reported (tierzero.adapters.calls)

    @classmethod
    def connect(cls, connections: Connections, cluster: str) -> "Kube":
        """A client per cluster, cached; rebuilt when its endpoint changed or its kubeconfig appeared."""
        endpoint = connections.endpoint("kubernetes", cluster)
        cached = _CLIENTS.get(connections, cluster)
        if cached is None or cached.endpoint != endpoint or cached.uses_kubeconfig != _has_kubeconfig(endpoint):
            cached = _CLIENTS.put(connections, cluster, cls(endpoint))
        return cached

    @property
    def uses_kubeconfig(self) -> bool:
        return self._uses_kubeconfig

    def close(self) -> None:
        self.api.close()

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        """One request; any failure as a `CallFailed` (its `status` the HTTP status)."""
        with _translated(f"Kubernetes API {method} {path} at {self.endpoint.url}"):
            request = self.api.param_serialize(
                method, path, header_params={"Content-Type": "application/json", "Accept": "application/json"},
                body=body, auth_settings=["BearerToken"],
            )
            response = self.api.call_api(*request, _request_timeout=30)
            response.read()
            return self.api.response_deserialize(response, {"2XX": "object"}).data

    def version(self) -> str:
        from kubernetes import client

        with _translated(f"Kubernetes API version at {self.endpoint.url}"):
            return str(client.VersionApi(self.api).get_code().git_version)

    def wait_for_api(self, *, policy: Policy = Policy(base=1, cap=10, deadline=600), on_retry: OnRetry | None = None,
                     sleep: Callable[[float], None] | None = None) -> str:
        kwargs: dict[str, Any] = {"policy": policy, "on_retry": on_retry, "what": f"the Kubernetes API at {self.endpoint.url}"}
        if sleep:
            kwargs["sleep"] = sleep
        return retry_call(self.version, **kwargs)

    def nodes(self) -> list[NodeStatus]:
        out = []
        with _translated(f"Kubernetes API nodes at {self.endpoint.url}"):
            items = self.core.list_node().items
        for node in items:
            status, meta = node.status, node.metadata
            conditions = {c.type: c.status for c in ((status.conditions if status else None) or [])}
            labels = (meta.labels if meta else None) or {}
            roles = tuple(sorted(k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/")))
            version = str(status.node_info.kubelet_version) if status and status.node_info else ""
            out.append(NodeStatus(str(meta.name if meta else ""), conditions.get("Ready") == "True", roles, version))
        return out

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        obj = {"apiVersion": api_version, "kind": kind, "metadata": {"name": name, **({"namespace": namespace} if namespace else {})}}
        try:
            return dict(self._call("GET", object_path(obj, with_name=True)))
        except CallFailed as exc:
            if exc.status == 404:
                return None
            raise

    def list(self, api_version: str, kind: str, namespace: str | None) -> list[dict[str, Any]]:
        """Objects of a kind in a namespace (None: all namespaces); [] when the kind is unknown."""
        base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        path = f"{base}/namespaces/{namespace}/{plural_of(kind)}" if namespace else f"{base}/{plural_of(kind)}"
        try:
            items: list[dict[str, Any]] = self._call("GET", path).get("items", [])
        except CallFailed as exc:
            if exc.status == 404:
                return []
            raise
        for item in items:
            item.setdefault("kind", kind)
            item.setdefault("apiVersion", api_version)
        return items

    def apply(self, obj: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """Create the object, or replace it keeping its resourceVersion. -> (created|replaced|unchanged, obj)."""
        meta = obj.get("metadata", {})
        existing = self.get(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"))
        if existing is None:
            try:
                return "created", self._call("POST", object_path(obj, with_name=False), obj)
            except CallFailed as exc:
                if exc.status != 409:
                    raise
                existing = self.get(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace")) or {}
        if _same(existing, obj):
            return "unchanged", existing
        body = json.loads(json.dumps(obj))
        body.setdefault("metadata", {})["resourceVersion"] = existing.get("metadata", {}).get("resourceVersion")
        return "replaced", self._call("PUT", object_path(obj, with_name=True), body)

    def delete(self, obj: dict[str, Any]) -> bool:
        try:
            self._call("DELETE", object_path(obj, with_name=True))
            return True
        except CallFailed as exc:
            if exc.status == 404:
                return False
            raise

    def conditions(self, api_version: str, kind: str, name: str, namespace: str = "flux-system") -> dict[str, dict[str, Any]]:
        """status.conditions by type, e.g. of a Flux Kustomization or HelmRelease."""
        obj = self.get(api_version, kind, name, namespace)
        if obj is None:
            raise OperationError(f"{kind} {namespace}/{name} does not exist", hint="check the GitOps tree was applied")
        return {c["type"]: c for c in obj.get("status", {}).get("conditions", [])}

    def is_ready(self, api_version: str, kind: str, name: str, namespace: str = "flux-system") -> bool:
        ready = self.conditions(api_version, kind, name, namespace).get("Ready", {})
        return ready.get("status") == "True"


_CLIENTS: ClientCache[str, Kube] = ClientCache()  # by cluster name


@contextmanager
def _translated(what: str) -> Iterator[None]:
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    try:
        yield
    except (ApiException, HTTPError, OSError) as exc:
        raise from_kubernetes(exc, what) from exc


def _same(existing: dict[str, Any], wanted: dict[str, Any]) -> bool:
    for key, value in wanted.items():
        if key == "metadata":
            have = existing.get("metadata", {})
            if any(have.get(k) != v for k, v in value.items() if k in ("labels", "annotations", "name", "namespace")):
                return False
        elif key != "status" and existing.get(key) != value:
            return False
    return True
