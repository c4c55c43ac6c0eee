"""The Talos Image Factory's HTTP API: register a schematic, find an image's checksum.

Facts (siderolabs/image-factory v1.5.0, docs/api.md and internal/frontend/http):
- `POST /schematics` with the schematic YAML answers 201 `{"id": ...}` (and, since v1.3.0, the
  canonical `schematic`); posting the same schematic again answers the same ID. Images of an ID
  never posted are 404 `schematic ID "<id>" not found`.
- `<image URL>.sha256` is an Enterprise feature: the community build answers 402.
Where the factory is: ("http", "image-factory") in `Connections` when set (the sandbox's stand-in),
else the cluster's `image_factory` from the spec.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import requests

from tierzero.adapters.connections import Connections, UnknownEndpoint
from tierzero.adapters.retry import Policy, RetryExhausted, retry_async
from tierzero.errors import OperationError

_HEX64 = re.compile(r"\b([0-9a-f]{64})\b")


def factory_url(connections: Connections, spec_url: str) -> str:
    """The base URL to reach the factory at from here (and from the Proxmox hosts)."""
    try:
        return connections.endpoint("http", "image-factory").url
    except UnknownEndpoint:
        return spec_url.rstrip("/")


class _Transient(Exception):
    pass


class ImageFactory:
    def __init__(self, base_url: str, *, timeout: float = 30.0, policy: Policy | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.policy = policy or Policy(deadline=120.0)
        self.session = requests.Session()

    def _request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        try:
            answer = self.session.request(method, self.base_url + path, timeout=self.timeout, **kwargs)
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise _Transient(f"{type(exc).__name__}: {exc}") from None
        if answer.status_code >= 500 or answer.status_code == 429:
            raise _Transient(f"HTTP {answer.status_code}: {answer.text.strip()[:200]}")
        return answer

    async def _call(self, what: str, method: str, path: str, **kwargs: Any) -> requests.Response:
        try:
            return await retry_async(lambda: asyncio.to_thread(self._request, method, path, **kwargs), policy=self.policy,
                                     classify=lambda exc: isinstance(exc, _Transient), what=what)
        except RetryExhausted as exc:
            raise OperationError(f"the Image Factory at {self.base_url} kept failing ({what}): {exc.message}",
                                 hint="check the factory is reachable (clusters[].image_factory), then run again") from exc

    async def register(self, schematic_yaml: str) -> str:
        """POST the schematic; returns the ID the factory gives it."""
        answer = await self._call("register the schematic", "POST", "/schematics", data=schematic_yaml.encode(),
                                  headers={"Content-Type": "application/yaml"})
        if answer.status_code not in (200, 201):
            raise OperationError(f"the Image Factory at {self.base_url} refused the schematic: HTTP {answer.status_code} {answer.text.strip()[:300]}",
                                 hint="check clusters[].extensions names official extensions; an Enterprise factory may need credentials")
        try:
            sid = str(json.loads(answer.text)["id"])
        except (ValueError, KeyError, TypeError) as exc:
            raise OperationError(f"the Image Factory at {self.base_url} answered no schematic ID: {answer.text[:200]!r}") from exc
        return sid

    async def checksum(self, image_url: str) -> str | None:
        """The image's sha256 when the factory publishes one (Enterprise), else None."""
        path = image_url.removeprefix(self.base_url)
        answer = await self._call("read the image checksum", "GET", path + ".sha256")
        if answer.status_code != 200:
            return None
        found = _HEX64.search(answer.text)
        return found.group(1) if found else None

    async def versions(self) -> list[str]:
        answer = await self._call("list the Talos versions", "GET", "/versions")
        try:
            return [str(v) for v in json.loads(answer.text)]
        except (ValueError, TypeError):
            return []

    def close(self) -> None:
        self.session.close()
