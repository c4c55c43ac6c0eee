"""OCI reads through the official SDK: instances and their lifecycle state, budgets, and this
month's cost from the usage API. Every client gets `service_endpoint=` from the
("oci", "default") endpoint when it names one (the sandbox does); a real run leaves it out
and the SDK derives the regional endpoints.

Endpoint extra: "config_file"/"profile" (an ~/.oci/config section), or "key_file" (an API
signing key, PEM: the SDK builds its signer from it as from a config file's `key_file`; the
sandbox keeps a throwaway one), or "signer" (an `oci.signer.Signer`); "region", "tenancy"."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tierzero.adapters import calls
from tierzero.adapters.connections import ClientCache, Connections, Endpoint
from tierzero.adapters.errors import from_oci
from tierzero.errors import OperationError

if TYPE_CHECKING:
    from tierzero.spec.models import Platform

_PLACEHOLDER_FINGERPRINT = ":".join(["00"] * 16)


@dataclass(frozen=True)
class InstanceInfo:
    name: str
    id: str
    shape: str
    state: str
    ocpus: float
    memory_gb: float
    availability_domain: str

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def throwaway_key_pem() -> bytes:
    """A fresh 2048-bit RSA private key, PEM (the size OCI's API keys use): for stand-ins that
    accept any signature."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption())


def throwaway_signer(tenancy: str = "ocid1.tenancy.oc1..sandbox") -> Any:
    """A request signer over a fresh RSA key: the stand-in accepts any signature."""
    import oci

    return oci.signer.Signer(tenancy, "ocid1.user.oc1..sandbox", _PLACEHOLDER_FINGERPRINT,
                             private_key_file_location=None, private_key_content=throwaway_key_pem().decode())


class Oci:
    def __init__(self, endpoint: Endpoint | None, *, region: str, tenancy: str) -> None:
        import oci

        extra = endpoint.extra if endpoint else {}
        self.tenancy = extra.get("tenancy", tenancy)
        self.kwargs: dict[str, Any] = {}
        if extra.get("signer") is not None:
            # The SDK validates the config even when a signer is given; these fields are then unused.
            self.config: dict[str, Any] = {
                "region": extra.get("region", region), "tenancy": self.tenancy, "key_file": "unused-with-signer",
                "user": "ocid1.user.oc1..signer", "fingerprint": _PLACEHOLDER_FINGERPRINT,
            }
            self.kwargs["signer"] = extra["signer"]
        elif extra.get("key_file") is not None:
            # An API key without a config file: the same fields a config file's profile holds.
            self.config = {"region": extra.get("region", region), "tenancy": self.tenancy, "key_file": str(extra["key_file"]),
                           "user": str(extra.get("user", "ocid1.user.oc1..sandbox")), "fingerprint": str(extra.get("fingerprint", _PLACEHOLDER_FINGERPRINT))}
        else:
            config_file = str(extra.get("config_file", Path("~/.oci/config").expanduser()))
            self.config = oci.config.from_file(config_file, extra.get("profile", "DEFAULT"))
            self.config.setdefault("region", region)
        self.service_endpoint = endpoint.url if endpoint and extra.get("service_endpoint", True) else None
        if self.service_endpoint:
            self.kwargs["service_endpoint"] = self.service_endpoint

    @classmethod
    def connect(cls, connections: Connections, spec: Platform) -> "Oci":
        cached = _CLIENTS.get(connections, "default")
        if cached is None:
            if spec.oci is None:
                raise OperationError("the spec has no cloud.oci section: there is no OCI tenancy to read")
            endpoint = connections.endpoints.get(("oci", "default"))
            cached = _CLIENTS.put(connections, "default", cls(endpoint, region=spec.oci.region, tenancy=spec.oci.tenancy_ocid))
        return cached

    def _client(self, cls: Any) -> Any:
        client = cls(self.config, **self.kwargs)
        base = client.base_client
        send = base.request  # every attempt of every operation (retries, pages) goes through it

        def request(req: Any, *args: Any, **kwargs: Any) -> Any:
            url = str(getattr(req, "url", ""))
            query = getattr(req, "query_params", None) or {}
            shown = calls.http_request(str(req.method), url) + (f" {calls.params_text(query)}" if query else "")
            calls.sent("oci", url.split("/")[2] if "://" in url else str(base.endpoint), shown)
            return send(req, *args, **kwargs)

        base.request = request
        return client

    def client(self, cls: Any) -> Any:
        """An SDK client of class `cls` (e.g. `oci.object_storage.ObjectStorageClient`) with this tenancy's
        credentials and endpoint; every request it sends is reported (`tierzero.adapters.calls`)."""
        return self._client(cls)

    def instances(self, compartment_id: str) -> list[InstanceInfo]:
        import oci

        with translated("OCI list instances"):
            compute = self._client(oci.core.ComputeClient)
            items = oci.pagination.list_call_get_all_results(compute.list_instances, compartment_id).data
        return [
            InstanceInfo(i.display_name, i.id, i.shape, i.lifecycle_state,
                         float(i.shape_config.ocpus) if i.shape_config else 0.0,
                         float(i.shape_config.memory_in_gbs) if i.shape_config else 0.0, i.availability_domain)
            for i in items
        ]

    def compartments(self) -> list[str]:
        """Every active compartment of the tenancy, the root (the tenancy itself) first: the free
        tier is counted per tenancy, so instances anywhere in it count (Oracle, "Always Free Resources")."""
        import oci

        with translated("OCI list compartments"):
            identity = self._client(oci.identity.IdentityClient)
            items = oci.pagination.list_call_get_all_results(
                identity.list_compartments, self.tenancy, compartment_id_in_subtree=True, access_level="ANY",
                lifecycle_state="ACTIVE").data
        return [self.tenancy, *(c.id for c in items if c.id != self.tenancy)]

    def tenancy_instances(self, also: str | None = None) -> list[InstanceInfo]:
        """The instances of every compartment in the tenancy (and of `also`, should the listing lack it)."""
        ids = self.compartments()
        if also and also not in ids:
            ids.append(also)
        return [i for cid in ids for i in self.instances(cid)]

    def budgets(self, compartment_id: str | None = None) -> list[dict[str, Any]]:
        import oci

        with translated("OCI list budgets"):
            client = self._client(oci.budget.BudgetClient)
            items = oci.pagination.list_call_get_all_results(client.list_budgets, compartment_id or self.tenancy).data
        return [{"name": b.display_name, "amount": float(b.amount), "actual_spend": float(b.actual_spend or 0.0),
                 "state": b.lifecycle_state} for b in items]

    def cost_this_month(self, now: datetime | None = None) -> tuple[float, str]:
        total, currency, _ = self.usage_this_month(now)
        return round(total, 2), currency

    def usage_this_month(self, now: datetime | None = None) -> tuple[float, str, int]:
        """(cost, currency, how many usage items) from the first of this month (UTC) to the first
        of the next: the usage API wants whole UTC days (oracle/oci-java-sdk issue 246)."""
        import oci

        now = now or datetime.now(timezone.utc)
        start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        end = (start.replace(month=start.month % 12 + 1, year=start.year + (start.month == 12)))
        details = oci.usage_api.models.RequestSummarizedUsagesDetails(
            tenant_id=self.tenancy, time_usage_started=start, time_usage_ended=end, granularity="MONTHLY", query_type="COST")
        with translated("OCI usage this month"):
            client = self._client(oci.usage_api.UsageapiClient)
            items = client.request_summarized_usages(details).data.items or []
        total = sum(float(i.computed_amount or 0.0) for i in items)  # unrounded: a fraction of a cent is a charge too
        currency = next((i.currency for i in items if i.currency), "USD")
        return total, currency, len(items)


_CLIENTS: ClientCache[str, Oci] = ClientCache()


@contextmanager
def translated(what: str) -> Iterator[None]:
    """SDK and connection errors inside the block become tierzero errors (`from_oci`), named by `what`."""
    import oci

    try:
        yield
    except (oci.exceptions.ServiceError, oci.exceptions.RequestException, oci.exceptions.ConnectTimeout, OSError) as exc:
        raise from_oci(exc, what) from exc
