"""A Kubernetes API stand-in: an in-process HTTP server speaking the subset of the REST API
the official client uses here.

- GET /version; GET /api/v1/nodes[/NAME] (the spec's cluster nodes, Ready)
- CRUD on /api/v1/<plural>[/NAME] and /api/v1/namespaces/NS/<plural>[/NAME] (namespaces,
  secrets, configmaps, ...) and on /apis/GROUP/VERSION/[namespaces/NS/]<plural>[/NAME]
- objects of a *.fluxcd.io group report status.conditions Ready=True `ready_after` seconds
  after they were created (Reconciling until then)
- fault injection: the first `fail_first` requests get 503 (the API is not up yet)
- persistence: `KubeState.attach(document)` restores the objects and resourceVersion counter
  a world document holds and saves them after every change, before the response goes out

In the sandbox (`STANDIN`, "kubernetes"): one HTTPS API per spec cluster, reached as
("kubernetes", CLUSTER), its nodes Ready and, with gitops, a bootstrapped flux-system
Kustomization (no Flux runs here: the stand-in plays a bootstrapped one); the world document
"kubernetes-CLUSTER" keeps its objects.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

from tierzero.adapters.connections import Endpoint
from tierzero.sandbox.context import Handle, SandboxContext, StandIn, Stop
from tierzero.sandbox.http_server import StandInHttpServer


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def node_object(name: str, ip: str = "", role: str = "worker", ready: bool = True) -> dict[str, Any]:
    labels = {"kubernetes.io/hostname": name}
    if role == "controlplane":
        labels["node-role.kubernetes.io/control-plane"] = ""
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": labels, "uid": str(uuid.uuid4()), "creationTimestamp": _now()},
        "status": {
            "conditions": [{"type": "Ready", "status": "True" if ready else "False", "reason": "KubeletReady", "message": "kubelet is posting ready status"}],
            "addresses": [{"type": "InternalIP", "address": ip}] if ip else [],
            "nodeInfo": {"kubeletVersion": "v1.36.2", "osImage": "Talos (sandbox)", "architecture": "arm64",
                         "bootID": "", "containerRuntimeVersion": "containerd://2.0", "kernelVersion": "6.12",
                         "kubeProxyVersion": "", "machineID": "", "operatingSystem": "linux", "systemUUID": ""},
        },
    }


class KubeState:
    """Objects by (api prefix, namespace or '', plural) -> name -> object."""

    def __init__(self, nodes: Iterable[dict[str, Any]] = (), ready_after: float = 0.0, fail_first: int = 0) -> None:
        self.lock = threading.Lock()
        self.objects: dict[tuple[str, str, str], dict[str, dict[str, Any]]] = {}
        self.created: dict[str, float] = {}  # uid -> monotonic creation time
        self.ready_after = ready_after
        self.fail_first = fail_first
        self.requests = 0
        self.version = 1
        self.persist: Callable[[dict[str, Any]], None] | None = None
        for node in nodes:
            self.objects.setdefault(("/api/v1", "", "nodes"), {})[node["metadata"]["name"]] = node
        self.objects[("/api/v1", "", "namespaces")] = {
            ns: {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "uid": str(uuid.uuid4())}, "status": {"phase": "Active"}}
            for ns in ("default", "kube-system", "flux-system")
        }

    def seed(self, prefix: str, namespace: str, plural: str, obj: dict[str, Any]) -> None:
        """Put an object in place as if created now (e.g. the Kustomization Flux bootstrap makes)."""
        meta = obj.setdefault("metadata", {})
        meta.update({"namespace": namespace, "uid": str(uuid.uuid4()), "creationTimestamp": _now(), "generation": 1, "resourceVersion": "1"})
        self.created[meta["uid"]] = time.monotonic() - 1e6  # long settled
        self.objects.setdefault((prefix, namespace, plural), {})[meta["name"]] = obj

    def snapshot(self) -> dict[str, Any]:
        """The objects and the resourceVersion counter, as JSON-ready data."""
        return {"version": self.version,
                "objects": [[p, ns, plural, coll] for (p, ns, plural), coll in sorted(self.objects.items()) if coll]}

    def restore(self, doc: dict[str, Any]) -> None:
        """Put a snapshot back over what the constructor and `seed` put in place: a saved object
        wins over a seeded one of the same name, seeded ones the snapshot lacks (e.g. a node the
        spec added) stay. Restored objects count as long settled, so Flux ones are Ready."""
        self.version = max(self.version, int(doc.get("version", 1)))
        settled = float("-inf")  # older than any ready_after
        for prefix, namespace, plural, items in doc.get("objects", []):
            coll = self.objects.setdefault((prefix, namespace, plural), {})
            for name, obj in items.items():
                coll[name] = obj
                uid = obj.get("metadata", {}).get("uid")
                if uid:
                    self.created[uid] = settled

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

    def decorate(self, prefix: str, obj: dict[str, Any]) -> dict[str, Any]:
        if ".fluxcd.io/" not in prefix + "/":
            return obj
        out = json.loads(json.dumps(obj))
        age = time.monotonic() - self.created.get(out["metadata"].get("uid", ""), 0.0)
        ready = age >= self.ready_after
        out.setdefault("status", {})["conditions"] = [{
            "type": "Ready", "status": "True" if ready else "Unknown",
            "reason": "ReconciliationSucceeded" if ready else "Progressing",
            "message": "Applied revision: main@sha1:sandbox" if ready else "reconciliation in progress",
            "lastTransitionTime": _now(),
        }]
        out["status"]["observedGeneration"] = out["metadata"].get("generation", 1)
        return out


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
        if path in ("/version", "/version/"):
            return self._send(200, {
                "major": "1", "minor": "36", "gitVersion": "v1.36.2", "gitCommit": "sandbox", "gitTreeState": "clean",
                "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.25", "compiler": "gc", "platform": "linux/arm64"})
        parsed = _parse(path)
        if parsed is None:
            return self._status(404, "NotFound", f"the server could not find the requested resource {path}")
        prefix, ns, plural, name = parsed
        with st.lock:
            coll = st.objects.setdefault((prefix, ns, plural), {})
            if method == "GET" and name is None:
                items = [st.decorate(prefix, o) for o in coll.values()] if ns or plural != "nodes" else list(coll.values())
                if not ns and plural not in ("nodes", "namespaces"):  # list across namespaces
                    items = [st.decorate(prefix, o) for (p, _, pl), c in st.objects.items() if p == prefix and pl == plural for o in c.values()]
                return self._send(200, {"kind": "List", "apiVersion": "v1", "metadata": {"resourceVersion": str(st.version)}, "items": items})
            if method == "POST" and name is None:
                obj_name = body.get("metadata", {}).get("name")
                if not obj_name:
                    return self._status(422, "Invalid", "metadata.name is required")
                if obj_name in coll:
                    return self._status(409, "AlreadyExists", f'{plural} "{obj_name}" already exists')
                return self._commit(201, st.decorate(prefix, self._store(coll, obj_name, ns, body)))
            if name is None:
                return self._status(405, "MethodNotAllowed", method)
            found = coll.get(name)
            if method == "GET":
                if found is None:
                    return self._status(404, "NotFound", f'{plural} "{name}" not found')
                return self._send(200, st.decorate(prefix, found))
            if method == "DELETE":
                if coll.pop(name, None) is None:
                    return self._status(404, "NotFound", f'{plural} "{name}" not found')
                return self._commit(200, {"kind": "Status", "apiVersion": "v1", "status": "Success"})
            if method in ("PUT", "PATCH"):
                if found is None:
                    return self._status(404, "NotFound", f'{plural} "{name}" not found')
                merged = {**found, **body} if method == "PATCH" else body
                return self._commit(200, st.decorate(prefix, self._store(coll, name, ns, merged, found)))
        return self._status(405, "MethodNotAllowed", method)

    def _commit(self, code: int, body: Any) -> None:
        """Answer a change once it is saved (the caller holds the state's lock)."""
        self.server.state.changed()
        self._send(code, body)

    def _store(self, coll: dict, name: str, ns: str, body: dict, previous: dict | None = None) -> dict:
        st = self.server.state
        st.version += 1
        meta = body.setdefault("metadata", {})
        meta["name"] = name
        if ns:
            meta["namespace"] = ns
        meta["resourceVersion"] = str(st.version)
        if previous:
            meta["uid"] = previous["metadata"]["uid"]
            meta["creationTimestamp"] = previous["metadata"].get("creationTimestamp")
            meta["generation"] = previous["metadata"].get("generation", 1) + 1
        else:
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = _now()
            meta["generation"] = 1
            st.created[meta["uid"]] = time.monotonic()
        coll[name] = body
        return body

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


def self_signed(host: str = "127.0.0.1") -> tuple[bytes, bytes]:
    """A throwaway certificate (PEM) and key (PEM) for a loopback server."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tierzero sandbox kube-apiserver")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host)), x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def serving_pair(base: Any, host: str = "127.0.0.1") -> tuple[Any, Any]:
    """(certificate, key) files in `base` for the stand-in's HTTPS: one pair, reused by every
    start while it is valid for another hour (a real API server keeps its serving certificate
    too), replaced when it is not. Pairs of older versions (one per port) are removed."""
    import datetime as dt
    import ipaddress

    from cryptography import x509

    from tierzero.workspace.layout import write_private, write_public

    base.mkdir(parents=True, exist_ok=True)
    for stale in [*base.glob("kube-*.crt"), *base.glob("kube-*.key")]:
        stale.unlink(missing_ok=True)
    cert_file, key_file = base / "kube.crt", base / "kube.key"
    try:
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        fresh = cert.not_valid_after_utc > dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)
        if fresh and ipaddress.ip_address(host) in names.get_values_for_type(x509.IPAddress) and key_file.is_file():
            return cert_file, key_file
    except (OSError, ValueError, x509.ExtensionNotFound):
        pass
    cert_pem, key_pem = self_signed(host)
    write_private(key_file, key_pem)
    write_public(cert_file, cert_pem)
    return cert_file, key_file


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
        nodes = [node_object(n.name, str(n.ip.address or ""), role) for role, n in cluster.nodes()]
        state = KubeState(nodes, ready_after=box.options.flux_ready_after, fail_first=box.options.kube_fail_first)
        if cluster.gitops is not None:  # PRE-SEEDED: no Flux runs here, the stand-in plays a bootstrapped one
            state.seed("/apis/kustomize.toolkit.fluxcd.io/v1", "flux-system", "kustomizations", {
                "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization", "metadata": {"name": "flux-system"},
                "spec": {"path": f"./{cluster.gitops.path}".rstrip("/") or ".", "interval": "10m", "prune": True,
                         "sourceRef": {"kind": "GitRepository", "name": "flux-system"}}})
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
