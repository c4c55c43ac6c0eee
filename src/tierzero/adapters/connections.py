"""Where the outside world is. Adapters ask here for an endpoint by kind and name; a real run
derives it from the spec and cloud outputs, a sandbox run points the same clients at
loopback stand-ins. Production code paths never branch on the target beyond this lookup.

Besides endpoints, a target may set typed knobs: `retry` (policies by kind of call; the sandbox
waits on its compressed clock), `cloud` (which OpenTofu layer the cloud phase applies and how
the capacity hunt backs off), `fetch` (how remote manifests are read; the sandbox is offline) and `git`
(push and Flux components knobs).
Adapters keep the clients they build per `Connections` in a `ClientCache` of their own."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Literal, Protocol, TypeVar

from tierzero.adapters.retry import Policy

if TYPE_CHECKING:
    from tierzero.adapters.backoff import Backoff

Target = Literal["real", "sandbox"]
RetryKind = Literal["ssh", "proxmox", "lock", "wait", "kubernetes"]
TofuLayer = Literal["oci", "oci_twin"]
Fetch = Callable[[str], str]  # GET a URL, return its body as text
FetchBytes = Callable[[str], bytes]  # GET a URL, return its body
K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    scheme: str = "https"
    verify: bool | str = True  # True, False, or a CA bundle path
    extra: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"


class UnknownEndpoint(LookupError):
    pass


class Tunnel(Protocol):
    """The way in to private addresses (tierzero.adapters.tunnel.BastionTunnel)."""

    name: str  # what the endpoints are reached through, e.g. the bastion instance

    def reach(self, kind: str, name: str, endpoint: Endpoint) -> Endpoint: ...

    def close(self) -> None: ...


@dataclass
class RetryPolicies:
    """How long each kind of call is retried: "ssh" connections, "proxmox" API calls, "lock" (a
    guest locked by another task), "wait" (for a cluster to become healthy), "kubernetes" applies.
    Unset kinds use `default`, then the built-in policy (600 s for waits, 300 s for the rest)."""

    default: Policy | None = None
    ssh: Policy | None = None
    proxmox: Policy | None = None
    lock: Policy | None = None
    wait: Policy | None = None
    kubernetes: Policy | None = None

    def policy(self, kind: RetryKind) -> Policy:
        found: Policy | None = getattr(self, kind)
        if found is None:
            found = self.default
        return found if found is not None else Policy(deadline=600.0 if kind == "wait" else 300.0)


@dataclass
class CloudLayer:
    """How the cloud phase applies OpenTofu: the packaged layer (`oci`, or the sandbox's
    `oci_twin` of terraform_data resources), extra environment for the tool, and the capacity
    hunt's backoff and deadline (None: the default backoff, the spec's capacity_hunt_minutes)."""

    layer: TofuLayer = "oci"
    env: dict[str, str] = field(default_factory=dict)
    capacity_backoff: Backoff | None = None
    capacity_hunt_seconds: float | None = None


@dataclass
class GitKnobs:
    """How the GitOps steps reach Git and Flux: `force` lets a push go on top of commits tierzero
    did not make (`deploy --force`); `flux_cli` is the flux program (None: `flux` on PATH);
    `extra_digests` (version -> sha256) trusts a components file besides the recorded one, which
    only the sandbox sets, for its stand-in CLI (a real run refuses it); `cache_dir` is where
    checked components are kept (None: <workspace>/cache/flux)."""

    force: bool = False
    flux_cli: Path | None = None
    extra_digests: dict[str, str] = field(default_factory=dict)
    cache_dir: Path | None = None


@dataclass(eq=False)  # compared and hashed by identity: client caches are keyed by it
class Connections:
    """Endpoints by (kind, name), e.g. ("ssh", "pve1"), ("proxmox", "pve1"), ("talos", "10.10.0.11"),
    ("kubernetes", "main"), ("oci", "default"), ("infisical", "infisical"), ("http", "image-factory")."""

    target: Target = "real"
    endpoints: dict[tuple[str, str], Endpoint] = field(default_factory=dict)
    ssh_key: Path | None = None
    known_hosts: Path | None = None
    retry: RetryPolicies = field(default_factory=RetryPolicies)
    cloud: CloudLayer = field(default_factory=CloudLayer)
    fetch: Fetch | None = None  # None: over HTTPS (tierzero.adapters.http.fetch_text)
    # The sandbox's network: where an address a step learned (a published endpoint, or one the
    # spec names) is reachable in this target; None for an address no stand-in plays. Real: unset.
    route: Callable[[Endpoint], Endpoint | None] | None = None
    fetch_bytes: FetchBytes | None = None  # None: over HTTPS (tierzero.adapters.http.fetch_binary)
    git: GitKnobs = field(default_factory=GitKnobs)
    # The way in on a cloud blueprint: private addresses are reached through SSH forwards over the
    # bastion (tierzero.adapters.tunnel), opened when an endpoint is first asked for. None: direct.
    tunnel: Tunnel | None = None

    def add(self, kind: str, name: str, endpoint: Endpoint) -> None:
        self.endpoints[(kind, name)] = endpoint

    def reach(self, endpoint: Endpoint) -> Endpoint | None:
        """Where `endpoint` (a real address) is reached from here: itself, or the sandbox's route."""
        return endpoint if self.route is None else self.route(endpoint)

    def endpoint(self, kind: str, name: str, default: Endpoint | None = None) -> Endpoint:
        """The endpoint by kind and name (else `default`); through the tunnel when it carries it
        (BastionUnreachable when the bastion does not answer). UnknownEndpoint when neither exists."""
        found = self.endpoints.get((kind, name), default)
        if found is not None:
            return found if self.tunnel is None else self.tunnel.reach(kind, name, found)
        raise UnknownEndpoint(f"no {kind} endpoint known for {name!r}")


class ClientCache(Generic[K, V]):
    """The clients one adapter built for each `Connections`, by key (sessions are reused across
    steps); they are dropped with the Connections they were built for."""

    def __init__(self) -> None:
        self._by: weakref.WeakKeyDictionary[Connections, dict[K, V]] = weakref.WeakKeyDictionary()

    def get(self, connections: Connections, key: K) -> V | None:
        return self._by.get(connections, {}).get(key)

    def put(self, connections: Connections, key: K, client: V) -> V:
        self._by.setdefault(connections, {})[key] = client
        return client

    def items(self, connections: Connections) -> list[tuple[K, V]]:
        return list(self._by.get(connections, {}).items())

    def pop_all(self, connections: Connections) -> list[V]:
        return list(self._by.pop(connections, {}).values())
