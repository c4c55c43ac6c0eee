"""Kubernetes through lightkube (a small, typed client: its kubeconfig handling, TLS and
authentication, over httpx), pointed at an endpoint from `Connections`. Paths and bodies are the
REST API's own (`object_path`), sent as JSON.

The ("kubernetes", CLUSTER) endpoint either names a kubeconfig file (extra["kubeconfig"],
used once it exists: a real run has it after Talos bootstrap) or carries the URL plus optional extra["token"],
extra["cert_file"]/["key_file"] (what the sandbox gives). Calls are blocking; from a step use
`await asyncio.to_thread(kube.nodes)`.

Why not the official `kubernetes` package: importing it loads every generated model (about
0.3 s, more than the rest of a no-op deploy's checks); lightkube's config and HTTP layer load in
about half that, and these calls need no models."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tierzero.adapters import calls
from tierzero.adapters.connections import ClientCache, Connections, Endpoint
from tierzero.adapters.errors import CallFailed, from_kubernetes
from tierzero.adapters.retry import OnRetry, Policy, retry_call
from tierzero.errors import OperationError

if TYPE_CHECKING:
    from lightkube.config.kubeconfig import SingleConfig

REQUEST_TIMEOUT = 30.0  # seconds for one request

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


def configuration(endpoint: Endpoint) -> SingleConfig:
    """The lightkube configuration for an endpoint: its kubeconfig file (current context, or
    extra["context"]) once that exists, else the URL with its token or client certificate."""
    from lightkube.config.kubeconfig import KubeConfig
    from lightkube.config.models import Cluster, User

    if _has_kubeconfig(endpoint):
        found = KubeConfig.from_file(str(endpoint.extra["kubeconfig"])).get(endpoint.extra.get("context"))
        if found is None:
            raise OperationError(f"kubeconfig {endpoint.extra['kubeconfig']} has no context to use",
                                 hint="re-run the platform phase to write a fresh kubeconfig")
        if endpoint.extra.get("via"):  # a forward through the bastion: the API server's certificate names 127.0.0.1 too
            import msgspec  # (Talos KubernetesCertSANsController, v1.14 internal/app/machined/pkg/controllers/secrets/kubernetes_cert_sans.go)

            found = found._replace(cluster=msgspec.structs.replace(found.cluster, server=endpoint.url))
        return found
    verify = endpoint.verify
    cluster = Cluster(server=endpoint.url, certificate_auth=verify if isinstance(verify, str) else None, insecure=verify is False)
    user = User(token=endpoint.extra.get("token"), client_cert=endpoint.extra.get("cert_file"), client_key=endpoint.extra.get("key_file"))
    found = KubeConfig.from_one(cluster=cluster, user=user).get()
    assert found is not None  # from_one sets its one context as the current one
    return found


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
        import httpx2
        from lightkube.config.client_adapter import Client, ConnectionParams

        self.endpoint = endpoint
        self._uses_kubeconfig = _has_kubeconfig(endpoint)
        self.config = configuration(endpoint)
        # trust_env=False: no proxy or CA bundle from the environment: the endpoint says whom to trust.
        self.http = Client(self.config, ConnectionParams(timeout=httpx2.Timeout(REQUEST_TIMEOUT), trust_env=False))

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
        self.http.close()

    def _call(self, method: str, path: str, body: Any = None, content_type: str = "application/json") -> Any:
        """One request; any failure as a `CallFailed` (its `status` the HTTP status)."""
        what = f"Kubernetes API {method} {path} at {self.endpoint.url}"
        calls.sent("kubernetes", self.endpoint.url, calls.http_request(method, f"{self.config.cluster.server.rstrip('/')}{path}"))
        with _translated(what):
            headers = {"Accept": "application/json"} if body is None else {"Accept": "application/json", "Content-Type": content_type}
            response = self.http.request(method, path, headers=headers, content=None if body is None else json.dumps(body).encode())
            if response.status_code >= 400:
                raise from_kubernetes(_ApiStatus(response.status_code, _reason(response)), what)
            return response.json() if response.content else {}

    def version(self) -> str:
        return str(self._call("GET", "/version").get("gitVersion", ""))

    def wait_for_api(self, *, policy: Policy = Policy(base=1, cap=10, deadline=600), on_retry: OnRetry | None = None,
                     sleep: Callable[[float], None] | None = None) -> str:
        kwargs: dict[str, Any] = {"policy": policy, "on_retry": on_retry, "what": f"the Kubernetes API at {self.endpoint.url}"}
        if sleep:
            kwargs["sleep"] = sleep
        return retry_call(self.version, **kwargs)

    def nodes(self) -> list[NodeStatus]:
        out = []
        for node in self._call("GET", "/api/v1/nodes").get("items", []):
            status, meta = node.get("status") or {}, node.get("metadata") or {}
            conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
            labels = meta.get("labels") or {}
            roles = tuple(sorted(k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/")))
            version = str((status.get("nodeInfo") or {}).get("kubeletVersion") or "")
            out.append(NodeStatus(str(meta.get("name", "")), conditions.get("Ready") == "True", roles, version))
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
        """Create the object, or replace it keeping its resourceVersion. -> (created|replaced|unchanged, obj).
        A replace that loses a race (409 Conflict: someone wrote since it was read; Kubernetes
        api-concepts, "Resource versions") reads the object again and tries again, three times at most."""
        meta = obj.get("metadata", {})
        for attempt in range(3):
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
            try:
                return "replaced", self._call("PUT", object_path(obj, with_name=True), body)
            except CallFailed as exc:
                if exc.status != 409 or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def patch(self, api_version: str, kind: str, name: str, namespace: str | None, patch: dict[str, Any]) -> dict[str, Any]:
        """A JSON merge patch (RFC 7386) of one object, e.g. an annotation; -> the object after it."""
        obj = {"apiVersion": api_version, "kind": kind, "metadata": {"name": name, **({"namespace": namespace} if namespace else {})}}
        patched: dict[str, Any] = self._call("PATCH", object_path(obj, with_name=True), patch, content_type="application/merge-patch+json")
        return patched

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


@dataclass(frozen=True)
class _ApiStatus(Exception):
    """An answer of the API server with an error status (what `from_kubernetes` maps)."""

    status: int
    reason: str


def _reason(response: Any) -> str:
    """The API's Status message when the body is one, else the HTTP reason phrase."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return str(getattr(response, "reason_phrase", "") or "")


@contextmanager
def _translated(what: str) -> Iterator[None]:
    import httpx2

    try:
        yield
    except (httpx2.HTTPError, OSError) as exc:
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
