"""Where the outside world is. Adapters ask here for an endpoint by kind and name; a real run
derives it from the spec and cloud outputs, a sandbox run points the same clients at
loopback stand-ins. Production code paths never branch on the target beyond this lookup."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


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


@dataclass
class Connections:
    """Endpoints by (kind, name), e.g. ("ssh", "pve1"), ("proxmox", "pve1"), ("talos", "10.10.0.11"),
    ("kubernetes", "main"), ("oci", "default"), ("infisical", "infisical"), ("http", "image-factory")."""

    target: str = "real"
    endpoints: dict[tuple[str, str], Endpoint] = field(default_factory=dict)
    ssh_key: Path | None = None
    known_hosts: Path | None = None
    state: dict[str, Any] = field(default_factory=dict)  # adapter caches (sessions, clients)

    def add(self, kind: str, name: str, endpoint: Endpoint) -> None:
        self.endpoints[(kind, name)] = endpoint

    def endpoint(self, kind: str, name: str, default: Endpoint | None = None) -> Endpoint:
        found = self.endpoints.get((kind, name))
        if found is not None:
            return found
        if default is not None:
            return default
        raise UnknownEndpoint(f"no {kind} endpoint known for {name!r}")
