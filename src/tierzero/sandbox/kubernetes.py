"""A Kubernetes API stand-in: an in-process HTTP server speaking the subset of the REST API
tierzero's Kubernetes adapter (lightkube) uses here.

- GET /version; GET /api/v1/nodes[/NAME] (the spec's cluster nodes, Ready)
- CRUD on /api/v1/<plural>[/NAME] and /api/v1/namespaces/NS/<plural>[/NAME] (namespaces,
  secrets, configmaps, ...) and on /apis/GROUP/VERSION/[namespaces/NS/]<plural>[/NAME]
- a custom resource is served only once its CustomResourceDefinition is stored: 404 before
  (see `kube_resources`); PATCH is a JSON merge patch (RFC 7386), sent as
  `application/merge-patch+json`; any other body type is 415 UnsupportedMediaType, as the
  API server answers a PATCH it cannot decode (kubernetes.io/docs/reference/using-api/api-concepts,
  "Patch and apply"; apiserver handlers/patch.go). JSON patch, strategic merge and apply
  patches are real types the stand-in does not play: 415 too, saying so
- writes are refused as the real server refuses them (`kube_admission`): an invalid name 422
  Invalid, a namespaced object in a namespace that does not exist 404 NotFound, an update with a
  stale metadata.resourceVersion 409 Conflict; the Flux stand-in's apply gets the same refusals
- a Secret's stringData is merged into data, base64-encoded, and not stored (Kubernetes API
  reference, Secret v1: "stringData ... write-only ... merged into the data field on write")
- writes to an object keep the status it has: status is a subresource, written only through
  `.../status` (Kubernetes API conventions, "Spec and Status"; CRDs with `subresources.status`)
- `metadata.generation` grows only when something other than metadata or status changes
  (Kubernetes API conventions, "metadata.generation")
- no controller runs here: objects get a status only from a controller stand-in (the Flux
  stand-in writes through `KubeState`'s controller calls, the way a controller patches status)
- fault injection: the first `fail_first` requests get 503 (the API is not up yet)
- persistence: `KubeState.attach(document)` restores the objects and resourceVersion counter
  a world document holds and saves them after every change, before the response goes out

In the sandbox (`STANDIN`, "kubernetes"): one HTTPS API per spec cluster, reached as
("kubernetes", CLUSTER), holding what a fresh cluster holds (its nodes Ready, the default
namespaces); the world document "kubernetes-CLUSTER" keeps its objects.
"""

from __future__ import annotations

import base64
import copy
import json
import threading
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

from tierzero.adapters.connections import Endpoint
from tierzero.sandbox.context import Handle, SandboxContext, StandIn, Stop
from tierzero.sandbox.http_server import StandInHttpServer
from tierzero.sandbox.kube_admission import Refusal, conflict, invalid_name, missing_namespace, qualified, stale
from tierzero.sandbox.kube_resources import CRD_KEY, Resource, group_of, merge_patch, node_object, resource_for, serves
from tierzero.sandbox.kube_tls import serving_pair

__all__ = ["KubeApiServer", "KubeState", "node_object", "serving_pair"]


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class KubeState:
    """Objects by (api prefix, namespace or '', plural) -> name -> object. `lock` guards them;
    `changes` (a condition on it) is notified after every change, for controllers that watch."""

    def __init__(self, nodes: Iterable[dict[str, Any]] = (), fail_first: int = 0) -> None:
        self.lock = threading.Lock()
        self.changes = threading.Condition(self.lock)
        self.objects: dict[tuple[str, str, str], dict[str, dict[str, Any]]] = {}
        self.fail_first = fail_first
        self.requests = 0
        self.version = 1
        self.persist: Callable[[dict[str, Any]], None] | None = None
        for node in nodes:
            self.objects.setdefault(("/api/v1", "", "nodes"), {})[node["metadata"]["name"]] = node
        # The four initial namespaces (kubernetes.io/docs/concepts/overview/working-with-objects/namespaces, "Initial namespaces")
        self.objects[("/api/v1", "", "namespaces")] = {
            ns: {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "uid": str(uuid.uuid4())}, "status": {"phase": "Active"}}
            for ns in ("default", "kube-node-lease", "kube-public", "kube-system")
        }

    def snapshot(self) -> dict[str, Any]:
        """The objects and the resourceVersion counter, as JSON-ready data."""
        return {"version": self.version,
                "objects": [[p, ns, plural, coll] for (p, ns, plural), coll in sorted(self.objects.items()) if coll]}

    def restore(self, doc: dict[str, Any]) -> None:
        """Put a snapshot back over what the constructor put in place: a saved object wins over
        a fresh one of the same name; fresh ones the snapshot lacks (a node the spec added) stay."""
        self.version = max(self.version, int(doc.get("version", 1)))
        for prefix, namespace, plural, items in doc.get("objects", []):
            self.objects.setdefault((prefix, namespace, plural), {}).update(items)

    def attach(self, document: Any) -> None:
        """Persist to a world document (`load() -> dict | None`, `save(dict)`): restore what it
        holds, then save after every change."""
        self.restore(document.load() or {})
        self.persist = document.save
        with self.lock:
            self.changed()

    def changed(self) -> None:
        """Call with `lock` held, so saves happen in the order of the changes."""
        if self.persist is not None:
            self.persist(self.snapshot())
        self.changes.notify_all()

    def crds(self) -> dict[str, dict[str, Any]]:
        return self.objects.get(CRD_KEY, {})

    def store(self, coll: dict[str, Any], name: str, ns: str, body: dict[str, Any], previous: dict[str, Any] | None = None) -> dict[str, Any]:
        """Write `body` as object `name` (the caller holds `lock`): server-set metadata, the
        previous status kept, generation grown only when the object's content changed."""
        self.version += 1
        meta = body.setdefault("metadata", {})
        meta["name"] = name
        if ns:
            meta["namespace"] = ns
        meta["resourceVersion"] = str(self.version)
        if body.get("kind") == "Secret" and body.get("apiVersion") == "v1" and "stringData" in body:
            # stringData is write-only: merged into data, base64-encoded (core/v1 Secret reference)
            body["data"] = {**(body.get("data") or {}), **{k: base64.b64encode(str(v).encode()).decode() for k, v in (body.pop("stringData") or {}).items()}}
        if previous:
            old_meta = previous.get("metadata", {})
            meta["uid"] = old_meta["uid"]
            meta["creationTimestamp"] = old_meta.get("creationTimestamp")
            content = {k: v for k, v in body.items() if k not in ("metadata", "status")}
            old_content = {k: v for k, v in previous.items() if k not in ("metadata", "status")}
            meta["generation"] = old_meta.get("generation", 1) + (content != old_content)
            body.pop("status", None)
            if "status" in previous:
                body["status"] = previous["status"]
        else:
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = _now()
            meta["generation"] = 1
        coll[name] = body
        return body

    def refusal(self, res: Resource, obj: dict[str, Any], planned_namespaces: frozenset[str] = frozenset()) -> Refusal | None:
        """Why the API server refuses to create or update `obj` of resource `res` (the caller
        holds `lock`), or None. `planned_namespaces`: ones a dry run applies first."""
        meta = obj.get("metadata") or {}
        bad = invalid_name(res.kind, str(meta.get("name") or ""), group_of(res.prefix)[0])
        if bad is not None:
            return bad
        ns = str(meta.get("namespace") or "")
        if res.namespaced and ns and ns not in planned_namespaces and ns not in self.objects.get(("/api/v1", "", "namespaces"), {}):
            return missing_namespace(ns)
        return None

    def check(self, obj: dict[str, Any], planned_namespaces: frozenset[str] = frozenset()) -> Refusal | None:
        """A server-side dry run of `obj` (its kind served): the refusal, or None."""
        with self.lock:
            res = resource_for(str(obj.get("apiVersion")), str(obj.get("kind")), self.crds())
            return self.refusal(res, obj, planned_namespaces) if res is not None else None

    # -- the calls a controller stand-in makes (in-process, the way a controller would over the API)

    def resource(self, api_version: str, kind: str) -> Resource | None:
        with self.lock:
            return resource_for(api_version, kind, self.crds())

    def _key(self, res: Resource, namespace: str | None) -> tuple[str, str, str]:
        return (res.prefix, (namespace or "") if res.namespaced else "", res.plural)

    def read(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        """A copy of one object, or None (also when its kind is not served)."""
        with self.lock:
            res = resource_for(api_version, kind, self.crds())
            found = self.objects.get(self._key(res, namespace), {}).get(name) if res else None
            return copy.deepcopy(found) if found is not None else None

    def read_all(self, api_version: str, kind: str) -> list[dict[str, Any]]:
        """Copies of every object of a kind, in all namespaces, ordered by namespace and name."""
        with self.lock:
            res = resource_for(api_version, kind, self.crds())
            if res is None:
                return []
            found = [(ns, name, obj) for (p, ns, pl), coll in self.objects.items() if p == res.prefix and pl == res.plural
                     for name, obj in coll.items()]
            return [copy.deepcopy(obj) for _, _, obj in sorted(found, key=lambda t: (t[0], t[1]))]

    def apply(self, obj: dict[str, Any], manager: str) -> str:
        """Server-side apply by a controller: create, or replace the object's content keeping its
        status and the labels and annotations others set. -> created | configured | unchanged.
        Raises LookupError when the kind is not served (the caller words the error), `Refusal`
        when the API server refuses the object (`kube_admission`)."""
        meta = obj.get("metadata", {})
        with self.lock:
            res = resource_for(obj["apiVersion"], obj["kind"], self.crds())
            if res is None:
                raise LookupError(obj["kind"])
            refused = self.refusal(res, obj)
            if refused is not None:
                raise refused
            coll = self.objects.setdefault(self._key(res, meta.get("namespace")), {})
            previous = coll.get(meta["name"])
            body = copy.deepcopy(obj)
            if previous is not None:
                merged_meta = copy.deepcopy(previous.get("metadata", {}))
                for field in ("labels", "annotations"):
                    if meta.get(field):
                        merged_meta[field] = {**merged_meta.get(field, {}), **meta[field]}
                body["metadata"] = merged_meta
                if {k: v for k, v in body.items() if k != "status"} == {k: v for k, v in previous.items() if k != "status"}:
                    return "unchanged"
            self.store(coll, meta["name"], meta.get("namespace", "") if res.namespaced else "", body, previous)
            self.changed()
            return "created" if previous is None else "configured"

    def remove(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> bool:
        with self.lock:
            res = resource_for(api_version, kind, self.crds())
            if res is None or self.objects.get(self._key(res, namespace), {}).pop(name, None) is None:
                return False
            self.version += 1
            self.changed()
            return True

    def write_status(self, api_version: str, kind: str, name: str, namespace: str | None, status: dict[str, Any]) -> bool:
        """Replace an object's status (PUT .../status); False when the object is gone."""
        with self.lock:
            res = resource_for(api_version, kind, self.crds())
            found = self.objects.get(self._key(res, namespace), {}).get(name) if res else None
            if found is None:
                return False
            if found.get("status") == status:
                return True
            self.version += 1
            found["status"] = copy.deepcopy(status)
            found["metadata"]["resourceVersion"] = str(self.version)
            self.changed()
            return True


def _parse(path: str) -> tuple[str, str, str, str | None] | None:
    """-> (api prefix, namespace, plural, name) for a resource path."""
    parts = [p for p in path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        prefix, rest = "/api/v1", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        prefix, rest = f"/apis/{parts[1]}/{parts[2]}", parts[3:]
    else:
        return None
    namespace = ""
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    if not rest or len(rest) > 2:
        return None
    if len(rest) == 2 and rest[1] == "status":
        return None
    return prefix, namespace, rest[0], rest[1] if len(rest) == 2 else None


class _Handler(BaseHTTPRequestHandler):
    server: "KubeApiServer"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence the default stderr log
        pass

    def _send(self, code: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _status(self, code: int, reason: str, message: str) -> None:
        self._send(code, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "message": message, "code": code})

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length) or b"{}") if length else {}

    def _handle(self, method: str) -> None:
        st = self.server.state
        body = self._body() if method in ("POST", "PUT", "PATCH") else {}
        with st.lock:
            st.requests += 1
            if st.requests <= st.fail_first:
                return self._status(503, "ServiceUnavailable", "the API server is starting")
        path = urlsplit(self.path).path
        if method == "PATCH":
            kind = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            if kind in ("application/json-patch+json", "application/strategic-merge-patch+json", "application/apply-patch+yaml"):
                return self._status(415, "UnsupportedMediaType", f"{kind}: a patch type tierzero's Kubernetes stand-in does not play")
            if kind != "application/merge-patch+json":
                return self._status(415, "UnsupportedMediaType", "the body of the request was in an unknown format - accepted media types "
                                    "include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml")
        if path in ("/version", "/version/"):
            return self._send(200, {
                "major": "1", "minor": "36", "gitVersion": "v1.36.2", "gitCommit": "sandbox", "gitTreeState": "clean",
                "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.25", "compiler": "gc", "platform": "linux/arm64"})
        parsed = _parse(path)
        if parsed is None:
            return self._status(404, "NotFound", f"the server could not find the requested resource {path}")
        prefix, ns, plural, name = parsed
        with st.lock:
            if not serves(prefix, plural, st.crds()):
                return self._status(404, "NotFound", "the server could not find the requested resource")
            coll = st.objects.setdefault((prefix, ns, plural), {})
            if method == "GET" and name is None:
                items = list(coll.values())
                if not ns:  # across namespaces (a cluster-scoped kind has only the '' one)
                    items = [o for (p, _, pl), c in st.objects.items() if p == prefix and pl == plural for o in c.values()]
                return self._send(200, {"kind": "List", "apiVersion": "v1", "metadata": {"resourceVersion": str(st.version)}, "items": items})
            if method == "POST" and name is None:
                obj_name = str(body.get("metadata", {}).get("name") or "")
                kind = str(body.get("kind") or "")
                group = group_of(prefix)[0]
                if not obj_name:
                    return self._status(422, "Invalid", f'{qualified(kind, group)} "" is invalid: metadata.name: Required value: name or generateName is required')
                if obj_name in coll:  # apimachinery api/errors NewAlreadyExists: the resource qualified by its group
                    return self._status(409, "AlreadyExists", f'{qualified(plural, group)} "{obj_name}" already exists')
                refused = invalid_name(kind, obj_name, group) if kind else None
                if refused is None and ns and ns not in st.objects.get(("/api/v1", "", "namespaces"), {}):
                    refused = missing_namespace(ns)
                if refused is not None:
                    return self._status(refused.code, refused.reason, refused.message)
                body.pop("status", None)  # status is the subresource's: ignored on create
                if plural == "namespaces" and prefix == "/api/v1":
                    body["status"] = {"phase": "Active"}
                return self._commit(201, st.store(coll, obj_name, ns, body))
            if name is None:
                return self._status(405, "MethodNotAllowed", method)
            found = coll.get(name)
            if method == "GET":
                if found is None:
                    return self._status(404, "NotFound", f'{plural} "{name}" not found')
                return self._send(200, found)
            if method == "DELETE":
                if coll.pop(name, None) is None:
                    return self._status(404, "NotFound", f'{plural} "{name}" not found')
                st.version += 1
                return self._commit(200, {"kind": "Status", "apiVersion": "v1", "status": "Success"})
            if method in ("PUT", "PATCH"):
                if found is None:
                    return self._status(404, "NotFound", f'{plural} "{name}" not found')
                if stale((body.get("metadata") or {}).get("resourceVersion"), found["metadata"].get("resourceVersion")):
                    refused = conflict(plural, group_of(prefix)[0], name)
                    return self._status(refused.code, refused.reason, refused.message)
                merged = merge_patch(copy.deepcopy(found), body) if method == "PATCH" else body
                return self._commit(200, st.store(coll, name, ns, merged, found))
        return self._status(405, "MethodNotAllowed", method)

    def _commit(self, code: int, body: Any) -> None:
        """Answer a change once it is saved (the caller holds the state's lock)."""
        self.server.state.changed()
        self._send(code, body)

    def do_GET(self) -> None:  # noqa: N802
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._handle("PUT")

    def do_PATCH(self) -> None:  # noqa: N802
        self._handle("PATCH")

    def do_DELETE(self) -> None:  # noqa: N802
        self._handle("DELETE")


class KubeApiServer(StandInHttpServer):
    """Plain HTTP, or HTTPS with a throwaway certificate when `tls_dir` is given
    (`ca_file` is then the certificate a client verifies against)."""

    def __init__(self, state: KubeState, host: str = "127.0.0.1", port: int = 0, tls_dir: Any = None) -> None:
        super().__init__(_Handler, host, port, name="kube-api-standin")
        self.state = state
        self.ca_file: str | None = None
        if tls_dir is not None:
            import ssl
            from pathlib import Path

            cert_file, key_file = serving_pair(Path(tls_dir), host)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert_file, key_file)
            self.socket = context.wrap_socket(self.socket, server_side=True)
            self.ca_file = str(cert_file)

    @property
    def url(self) -> str:
        return f"{'https' if self.ca_file else 'http'}://127.0.0.1:{self.port}"

    def start(self) -> "KubeApiServer":
        self.start_serving()
        return self


SERVERS: Handle[dict[str, KubeApiServer]] = Handle("kubernetes")  # by cluster name


def _start(box: SandboxContext) -> Stop:
    servers = box.put(SERVERS, {})
    for cluster in box.spec.clusters:
        # PRE-SEEDED, and why: this stand-in plays the API server the control planes run once etcd
        # is bootstrapped, with the cluster's nodes registered; it does not model the bootstrap
        # itself (the Talos stand-in does), and the product reaches it only after etcd is up.
        # (the Talos stand-in then mirrors each node's state in them: `tierzero.sandbox.talos`)
        nodes = [node_object(n.name, str(n.ip.address or ""), role, kubelet=f"v{cluster.kubernetes_semver}",
                             os_image=f"Talos ({cluster.talos_version})") for role, n in cluster.nodes()]
        state = KubeState(nodes, fail_first=box.options.kube_fail_first)
        if box.world is not None:
            state.attach(box.world.file(f"kubernetes-{cluster.name}"))
        server = KubeApiServer(state, tls_dir=box.state_dir / "kube-tls").start()
        servers[cluster.name] = server
        box.connections.add("kubernetes", cluster.name,
                            Endpoint("127.0.0.1", server.port, scheme="https", verify=server.ca_file or False, extra={"token": "sandbox"}))

    def stop() -> None:
        for server in servers.values():
            server.stop()

    return stop


STANDIN = StandIn("kubernetes", _start)
