"""An OCI stand-in: an HTTP server for the endpoints tierzero reads through the official SDK.

- GET  /20160918/instances?compartmentId=...   (compute: the spec's instances, RUNNING)
- GET  /20190111/budgets?compartmentId=...     (budgets: the spec's budget)
- POST /20200107/usage                         (usage API: this month's cost, $0.00)

Requests are signed by the SDK; the stand-in accepts any signature.

In the sandbox (`STANDIN`, "oci", only when the spec has a cloud): ("oci", "default") with a
throwaway API key, made once and kept in the sandbox's state directory (0600): generating an RSA
key at every start cost more than the rest of the stand-in."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tierzero.adapters.connections import Endpoint
from tierzero.sandbox.context import Handle, SandboxContext, StandIn, Stop
from tierzero.sandbox.http_server import StandInHttpServer


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class OciState:
    def __init__(self, instances: list[dict[str, Any]] | None = None, budgets: list[dict[str, Any]] | None = None,
                 cost: float = 0.0, currency: str = "USD") -> None:
        self.instances = instances or []
        self.budgets = budgets or []
        self.cost = cost
        self.currency = currency
        self.requests: list[str] = []

    @classmethod
    def from_spec(cls, spec: Any) -> "OciState":
        oci = spec.oci if spec is not None else None
        if oci is None:
            return cls()
        compartment = oci.compartment_ocid or "ocid1.compartment.oc1..sandbox"
        instances = []
        for i, inst in enumerate(oci.a1_instances):
            ad = inst.availability_domain or oci.availability_domains[i % len(oci.availability_domains)]
            instances.append(instance(inst.name, "VM.Standard.A1.Flex", inst.ocpus, inst.memory_gb, ad, compartment, oci.region))
        for inst in oci.micro_instances:
            instances.append(instance(inst.name, "VM.Standard.E2.1.Micro", 0.125, 1, oci.availability_domains[0], compartment, oci.region))
        budgets = [{
            "id": "ocid1.budget.oc1..sandbox", "compartmentId": oci.tenancy_ocid, "displayName": f"tierzero-{spec.metadata.name}",
            "amount": oci.budget.amount, "resetPeriod": "MONTHLY", "targetType": "COMPARTMENT", "targets": [compartment],
            "lifecycleState": "ACTIVE", "actualSpend": 0.0, "forecastedSpend": 0.0, "alertRuleCount": 1,
            "timeCreated": _now(), "timeUpdated": _now(),
        }]
        return cls(instances, budgets)


def instance(name: str, shape: str, ocpus: float, memory_gb: float, ad: str, compartment: str, region: str) -> dict[str, Any]:
    return {
        "id": f"ocid1.instance.oc1..sandbox-{name}", "displayName": name, "compartmentId": compartment,
        "availabilityDomain": ad, "region": region, "shape": shape, "lifecycleState": "RUNNING",
        "shapeConfig": {"ocpus": ocpus, "memoryInGBs": memory_gb}, "timeCreated": _now(),
        "freeformTags": {"managed-by": "tierzero"},
    }


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

    def do_GET(self) -> None:  # noqa: N802
        st = self.server.state
        url = urlsplit(self.path)
        st.requests.append(f"GET {url.path}")
        if url.path == "/20160918/instances":
            # One tenancy, one compartment: whichever compartment id the caller learned, it is this one.
            return self._send(200, st.instances)
        if url.path.startswith("/20160918/instances/"):
            wanted = url.path.rsplit("/", 1)[1]
            for inst in st.instances:
                if inst["id"] == wanted:
                    return self._send(200, inst)
            return self._not_found()
        if url.path == "/20190111/budgets":
            return self._send(200, st.budgets)
        return self._not_found()

    def do_POST(self) -> None:  # noqa: N802
        st = self.server.state
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}") if length else {}
        st.requests.append(f"POST {url.path}")
        if url.path == "/20200107/usage":
            item = {
                "tenantId": body.get("tenantId"), "timeUsageStarted": body.get("timeUsageStarted"),
                "timeUsageEnded": body.get("timeUsageEnded"), "computedAmount": st.cost, "currency": st.currency,
            }
            return self._send(200, {"groupBy": body.get("groupBy") or [], "items": [item]})
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


def _start(box: SandboxContext) -> Stop:
    oci = box.spec.oci
    if oci is None:
        return lambda: None
    server = box.put(SERVER, OciApiServer(OciState.from_spec(box.spec)).start())
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
