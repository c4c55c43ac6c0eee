"""An OCI stand-in: an HTTP server for the endpoints tierzero reads through the official SDK.

- GET  /20160918/compartments?compartmentId=...   (identity: the tenancy's compartments)
- GET  /20160918/instances?compartmentId=...      (compute: the instances of that compartment)
- GET  /20190111/budgets?compartmentId=...        (budgets)
- POST /20200107/usage                            (usage API: the usage records, summed per month)
- POST /20160918/instances                        (LaunchInstance of a custom image: `tierzero.sandbox.oci_compute`)
- Object Storage, custom images and their work requests, the Limits API: `tierzero.sandbox.oci_storage`

What the tenancy holds is what was created in it, never the spec: the instances, compartment and
budget the cloud layer applied (read from the OpenTofu state of the `oci_twin` layer, the display
names the module gives them, `<name_prefix>-<instance>`), plus whatever `OciState` holds beside
them (another stack's instances, usage records with a charge). A tenancy is judged whole: the free
tier is per tenancy (Oracle, "Always Free Resources").

Usage records: every instance the stack runs shows one usage record for this month, and Always Free
usage is priced at 0 (the usage API reports it with `computedAmount` 0); `OciState.charge` adds one
with a cost. Requests whose window is not whole UTC days get OCI's 400 `InvalidParameter` "Passed
UTC date does not have the right precision: hours, minutes, seconds, and second fractions must be
0" (oracle/oci-java-sdk issue 246; research oci.md §7).

Requests are signed by the SDK; the stand-in accepts any signature.

In the sandbox (`STANDIN`, "oci", only when the spec has a cloud): ("oci", "default") with a
throwaway API key, made once and kept in the sandbox's state directory (0600): generating an RSA
key at every start cost more than the rest of the stand-in. The stack's state file is the
workspace's `cloud/terraform.tfstate`, which tierzero keeps age-sealed at rest (`terraform.tfstate.age`,
tierzero.adapters.tofu_state) when the binary is Terraform: the stand-in reads it with the workspace's age
key (it plays the tenancy, which knows what exists without reading anyone's state). A state OpenTofu
encrypted itself is not read here (the stand-in would need the passphrase): CI and the sandbox run Terraform."""

from __future__ import annotations

import ipaddress
import json
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tierzero.adapters.connections import Endpoint
from tierzero.sandbox.context import Handle, SandboxContext, StandIn, Stop
from tierzero.sandbox.http_server import StandInHttpServer
from tierzero.sandbox.oci_storage import OciStorage, Reply

A1_SHAPE, MICRO_SHAPE = "VM.Standard.A1.Flex", "VM.Standard.E2.1.Micro"
PRECISION = "Passed UTC date does not have the right precision: hours, minutes, seconds, and second fractions must be 0"


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _month_start(now: datetime | None = None) -> str:
    now = now or datetime.now(timezone.utc)
    return now.strftime("%Y-%m-01T00:00:00.000Z")


def stack_resources(state_text: str | None) -> list[dict[str, Any]]:
    """The `oci_twin` layer's applied resources in the text of an OpenTofu state file, as {"name", "key",
    "value"} per instance ([] while nothing was applied)."""
    if state_text is None:
        return []
    try:
        state = json.loads(state_text)
    except ValueError:
        return []
    out = []
    for res in state.get("resources", []):
        if res.get("mode") != "managed" or res.get("type") != "terraform_data":
            continue
        for inst in res.get("instances", []):
            output = (inst.get("attributes") or {}).get("output")
            value = output.get("value") if isinstance(output, dict) and "value" in output else output
            if isinstance(value, dict):
                out.append({"name": res.get("name"), "key": inst.get("index_key"), "value": value})
    return out


def instance_metadata(resources: list[dict[str, Any]], name: str) -> dict[str, str]:
    """The metadata instance `name` was launched with, among `resources` (see `stack_resources`); {} before."""
    for item in resources:
        if item["key"] == name and item["name"] in ("a1", "micro", "talos"):
            return {str(k): str(v) for k, v in (item["value"].get("metadata") or {}).items()}
    return {}


def stack_text(state_file: Path | None, identity: Callable[[], str] | None = None) -> str | None:
    """The text of the twin layer's state: the file itself while a command runs (or when nobody seals it), else
    its age-sealed copy (`<file>.age`, see tierzero.adapters.tofu_state) opened with `identity()`; None when neither is there."""
    import pyrage

    if state_file is None:
        return None
    try:
        if state_file.is_file():
            return state_file.read_text()
        sealed = state_file.with_name(state_file.name + ".age")
        if not sealed.is_file() or identity is None:
            return None
        return pyrage.decrypt(sealed.read_bytes(), [pyrage.x25519.Identity.from_str(identity())]).decode()
    except (OSError, ValueError, pyrage.DecryptError):
        return None


class OciState:
    """The tenancy. `instances`, `compartments` and `usage` hold what exists beside the stack's
    own resources (which come from `stack_state`, an OpenTofu state file of the twin layer)."""

    def __init__(self, instances: list[dict[str, Any]] | None = None, budgets: list[dict[str, Any]] | None = None,
                 *, tenancy: str = "ocid1.tenancy.oc1..sandbox", stack_state: Path | None = None,
                 compartments: list[dict[str, Any]] | None = None, usage: list[dict[str, Any]] | None = None,
                 currency: str = "USD", storage: OciStorage | None = None, stack_identity: Any = None) -> None:
        self.tenancy = tenancy
        self.storage = storage or OciStorage()
        self.launcher: Any = None  # LaunchInstance (tierzero.sandbox.oci_compute), once the Talos stand-in runs
        self.instances = instances or []
        self.budgets = budgets or []
        self.compartments = compartments or []
        self.usage = usage or []
        self.stack_state = stack_state
        self.stack_identity = stack_identity  # () -> AGE-SECRET-KEY-..., to read a sealed stack state
        self.currency = currency
        self.requests: list[str] = []
        self.lock = threading.Lock()

    def charge(self, amount: float, service: str = "Compute", when: datetime | None = None) -> None:
        """A usage record with a cost this month (a paid shape, a volume beyond the allowance)."""
        start = _month_start(when)
        self.usage.append({"service": service, "timeUsageStarted": start, "timeUsageEnded": _now(),
                           "computedAmount": amount, "currency": self.currency})

    # ------------------------------------------------------------------ what the stack applied

    def _stack(self) -> list[dict[str, Any]]:
        """The twin layer's applied resources, as {"type", "name", "key", "value"} per instance."""
        return stack_resources(self._stack_text())

    def instance_metadata(self, name: str) -> dict[str, str]:
        """The metadata the cloud layer launched instance `name` with (its `ssh_authorized_keys`), {}
        while it was not launched."""
        return instance_metadata(self._stack(), name)

    def _stack_text(self) -> str | None:
        return stack_text(self.stack_state, self.stack_identity)

    def stack_instances(self) -> list[dict[str, Any]]:
        found = []
        for item in self._stack():
            v = item["value"]
            if item["name"] not in ("a1", "talos", "micro") or "display_name" not in v:
                continue
            shape = MICRO_SHAPE if item["name"] == "micro" else A1_SHAPE
            ocpus, memory = (v.get("ocpus", 1), v.get("memory_gb", 6)) if shape == A1_SHAPE else (1, 1)
            found.append(instance(str(v["display_name"]), shape, float(ocpus), float(memory), str(v.get("ad")),
                                  str(v.get("compartment_id") or self.tenancy), str(v.get("region") or ""),
                                  ocid=str(v.get("ocid")), tags={"tierzero-role": "proxmox-host" if shape == A1_SHAPE else "micro"}))
        return found

    def vcn_route(self, address: str, port: int) -> str | None:
        """Whether the VCN delivers a TCP packet from the subnet (the bastion) to `address`:`port`: None when it
        does, else how it is lost. Inside the VCN CIDR: VCN-local routing delivers it. Outside: only a route rule
        does (the twin's `vm_route`), and then only when the target's VNIC skips the source/destination check (a
        VNIC that checks drops packets not addressed to it) and the security list admits the port from the
        subnet. Anything else follows 0.0.0.0/0 to the internet gateway, which drops private destinations, and the
        connect times out. Sources: OCI Networking docs, "VCN Route Tables" (local routing, a rule per
        destination), "Using a Private IP as a Route Target" (skip source/destination check), "Security Lists"
        (stateful ingress rules match source and port). Without an applied cloud layer (no VCN in the twin's
        state) nothing is judged: tests that start from a later phase play a network that was already built."""
        ip = ipaddress.ip_address(address)
        vcns = [item["value"] for item in self._stack() if item["name"] == "vcn"]
        if not vcns:  # no cloud layer applied: a test that starts from a later phase plays a network already built
            return None
        if any(ip in ipaddress.ip_network(str(v.get("cidr")), strict=False) for v in vcns):
            return None
        routes = [item["value"] for item in self._stack() if item["name"] == "vm_route"]
        route = next((r for r in routes if ip in ipaddress.ip_network(str(r.get("destination")), strict=False)), None)
        if route is None:
            return f"no route rule for {address}: the internet gateway drops a private destination (connect timed out)"
        if route.get("target_skips_source_dest_check") is not True:
            return f"the VNIC of {route.get('target_instance')} checks source/destination and drops packets for {address}"
        if port not in (route.get("ports") or []):
            return f"the security list admits no TCP {port} from the subnet (connect timed out)"
        return None

    def all_budgets(self) -> list[dict[str, Any]]:
        found = [{"id": item["value"].get("id"), "compartmentId": self.tenancy, "displayName": str(item["value"].get("id")),
                  "amount": item["value"].get("amount"), "resetPeriod": "MONTHLY", "targetType": "COMPARTMENT",
                  "lifecycleState": "ACTIVE", "actualSpend": 0.0, "timeCreated": _now()}
                 for item in self._stack() if item["name"] == "budget"]
        return found + list(self.budgets)

    def all_instances(self) -> list[dict[str, Any]]:
        return self.stack_instances() + list(self.instances)

    def all_compartments(self) -> list[dict[str, Any]]:
        known = {c["id"] for c in self.compartments}
        out = list(self.compartments)
        for inst in self.all_instances():
            cid = inst["compartmentId"]
            if cid != self.tenancy and cid not in known:
                known.add(cid)
                out.append({"id": cid, "compartmentId": self.tenancy, "name": cid.rsplit(".", 1)[-1][:16],
                            "description": "", "lifecycleState": "ACTIVE", "timeCreated": _now()})
        return out

    def usage_records(self) -> list[dict[str, Any]]:
        """This month's records: one per running instance (Always Free: cost 0), then the others."""
        start = _month_start()
        derived = [{"service": "Compute", "resourceId": i["id"], "timeUsageStarted": start, "timeUsageEnded": _now(),
                    "computedAmount": 0.0, "currency": self.currency}
                   for i in self.all_instances() if i["lifecycleState"] == "RUNNING"]
        return derived + list(self.usage)


def instance(name: str, shape: str, ocpus: float, memory_gb: float, ad: str, compartment: str, region: str,
             *, ocid: str | None = None, state: str = "RUNNING", tags: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "id": ocid or f"ocid1.instance.oc1..sandbox-{name}", "displayName": name, "compartmentId": compartment,
        "availabilityDomain": ad, "region": region, "shape": shape, "lifecycleState": state,
        "shapeConfig": {"ocpus": ocpus, "memoryInGBs": memory_gb}, "timeCreated": _now(),
        "freeformTags": dict(tags or {}),
    }


def _day_precise(value: Any) -> bool:
    try:
        when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return False
    return (when.hour, when.minute, when.second, when.microsecond) == (0, 0, 0, 0)


def _in_window(record: dict[str, Any], start: str, end: str) -> bool:
    def parse(v: str) -> datetime:
        return datetime.fromisoformat(v.replace("Z", "+00:00"))

    began = parse(record["timeUsageStarted"])
    return parse(start) <= began < parse(end)


class _Handler(BaseHTTPRequestHandler):
    server: "OciApiServer"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def _send(self, code: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("opc-request-id", "sandbox")
        self.end_headers()
        self.wfile.write(data)

    def _not_found(self) -> None:
        self._send(404, {"code": "NotAuthorizedOrNotFound", "message": f"no such resource {self.path}"})

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _storage(self, method: str, body: bytes = b"") -> bool:
        """Object Storage, images, work requests and limits: True when `oci_storage` answered."""
        url = urlsplit(self.path)
        reply = self.server.state.storage.route(method, url.path, url.query, self.headers, body)
        if reply is None:
            return False
        self.server.state.requests.append(f"{method} {url.path}")
        self._reply(reply, head=method == "HEAD")
        return True

    def _reply(self, reply: Reply, *, head: bool = False) -> None:
        if reply.body is None:
            data = b""
        elif isinstance(reply.body, bytes):
            data = reply.body
        else:
            data = json.dumps(reply.body).encode()
        self.send_response(reply.status)
        is_json = reply.body is not None and not isinstance(reply.body, bytes)
        self.send_header("Content-Type", "application/json" if is_json else "application/octet-stream")
        headers = {k.lower(): v for k, v in reply.headers.items()}
        if head:
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("opc-request-id", "sandbox")
            if "content-length" not in headers:
                self.send_header("Content-Length", "0")
            self.end_headers()
            return
        for key, value in headers.items():
            if key != "content-length":
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("opc-request-id", "sandbox")
        self.end_headers()
        self.wfile.write(data)

    def do_HEAD(self) -> None:  # noqa: N802
        if not self._storage("HEAD"):
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

    def do_PUT(self) -> None:  # noqa: N802
        body = self._body()
        if not self._storage("PUT", body):
            self._not_found()

    def do_DELETE(self) -> None:  # noqa: N802
        if not self._storage("DELETE"):
            self._not_found()

    def do_GET(self) -> None:  # noqa: N802
        if self._storage("GET"):
            return
        st = self.server.state
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        st.requests.append(f"GET {url.path}")
        with st.lock:
            if url.path == "/20160918/compartments":
                parent = query.get("compartmentId")
                subtree = query.get("compartmentIdInSubtree") == "true"
                every = st.all_compartments()
                return self._send(200, every if subtree and parent == st.tenancy else [c for c in every if c["compartmentId"] == parent])
            if url.path == "/20160918/instances":
                wanted = query.get("compartmentId")
                return self._send(200, [i for i in st.all_instances() if i["compartmentId"] == wanted])
            if url.path.startswith("/20160918/instances/"):
                ocid = url.path.rsplit("/", 1)[1]
                for inst in st.all_instances():
                    if inst["id"] == ocid:
                        return self._send(200, inst)
                return self._not_found()
            if url.path == "/20190111/budgets":
                return self._send(200, st.all_budgets())
        return self._not_found()

    def do_POST(self) -> None:  # noqa: N802
        raw = self._body()
        if self._storage("POST", raw):
            return
        st = self.server.state
        url = urlsplit(self.path)
        body = json.loads(raw or b"{}") if raw else {}
        st.requests.append(f"POST {url.path}")
        if url.path == "/20160918/instances" and st.launcher is not None:
            with st.storage.lock:
                reply = st.launcher(body)
            return self._reply(reply)
        if url.path == "/20200107/usage":
            start, end = str(body.get("timeUsageStarted")), str(body.get("timeUsageEnded"))
            if not (_day_precise(start) and _day_precise(end)):
                return self._send(400, {"code": "InvalidParameter", "message": PRECISION})
            with st.lock:
                records = [r for r in st.usage_records() if _in_window(r, start, end)]
            items = []
            if records:  # MONTHLY, no groupBy: one aggregated item for the window
                items.append({"tenantId": body.get("tenantId"), "timeUsageStarted": start, "timeUsageEnded": end,
                              "computedAmount": round(sum(float(r["computedAmount"]) for r in records), 6),
                              "computedQuantity": float(len(records)), "currency": st.currency})
            return self._send(200, {"groupBy": body.get("groupBy") or [], "items": items})
        return self._not_found()


class OciApiServer(StandInHttpServer):
    def __init__(self, state: OciState, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(_Handler, host, port, name="oci-api-standin")
        self.state = state

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "OciApiServer":
        self.start_serving()
        return self


SERVER: Handle[OciApiServer] = Handle("oci")
STORAGE_DOCUMENT = "oci-storage"  # buckets, objects, uploads, images: what the tenancy holds across runs


def _start(box: SandboxContext) -> Stop:
    oci = box.spec.oci
    if oci is None:
        return lambda: None
    # The account type is the user's (their sign-up and any upgrade), not something tierzero sets up: the
    # stand-in plays the account the spec says they have (or a test's, `oci_account`); tierzero still asks the Limits API.
    account = box.options.oci_account or oci.account
    storage = OciStorage(payg=account == "pay-as-you-go", compartment=oci.compartment_ocid or oci.tenancy_ocid)
    from tierzero.workspace.keys import load_age_identity

    state = OciState(tenancy=oci.tenancy_ocid, stack_state=Path(box.workspace.root) / "cloud" / "terraform.tfstate", storage=storage,
                     stack_identity=lambda: load_age_identity(box.workspace))
    if box.world is not None:
        document = box.world.file(STORAGE_DOCUMENT)
        storage.restore(document.load() or {})
        storage.persist = lambda: document.save(storage.snapshot())
    server = box.put(SERVER, OciApiServer(state).start())
    box.connections.add("oci", "default", Endpoint("127.0.0.1", server.port, scheme="http", extra={
        "key_file": str(throwaway_key(box.state_dir)), "region": oci.region, "tenancy": oci.tenancy_ocid}))
    return server.stop


def throwaway_key(state_dir: Path) -> Path:
    """The sandbox's API signing key (any signature is accepted here), made on first use."""
    from tierzero.adapters.oci import throwaway_key_pem
    from tierzero.workspace.layout import write_private

    path = state_dir / "oci-api-key.pem"
    if not path.is_file():
        write_private(path, throwaway_key_pem())
    return path


STANDIN = StandIn("oci", _start)
