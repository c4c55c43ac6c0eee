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
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from tierzero.adapters import calls
from tierzero.adapters.connections import Connections, UnknownEndpoint
from tierzero.adapters.errors import AuthenticationFailed, from_requests
from tierzero.adapters.retry import OnRetry, Policy, RetryExhausted, retry_async
from tierzero.errors import OperationError

_HEX64 = re.compile(r"\b([0-9a-f]{64})\b")
TRANSIENT_STATUS = (408, 425, 429, 500, 502, 503, 504)  # worth another attempt (as tierzero.adapters.errors has it)


def factory_url(connections: Connections, spec_url: str) -> str:
    """The base URL to reach the factory at from here (and from the Proxmox hosts)."""
    try:
        return connections.endpoint("http", "image-factory").url
    except UnknownEndpoint:
        return spec_url.rstrip("/")


class ImageFactory:
    """One factory, at `base_url`. Every attempt is reported (`tierzero.adapters.calls`, via
    "http"); connection failures and 408/425/429/5xx answers are retried within `policy`, and
    every other library exception becomes a tierzero error (`tierzero.adapters.errors`)."""

    def __init__(self, base_url: str, *, timeout: float = 30.0, policy: Policy | None = None,
                 on_retry: OnRetry | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.policy = policy or Policy(deadline=120.0)
        self.on_retry = on_retry
        self.session = requests.Session()

    def _request(self, what: str, method: str, path: str, **kwargs: Any) -> requests.Response:
        url = self.base_url + path
        calls.sent("http", urlsplit(url).netloc, calls.http_request(method, url))
        try:
            answer = self.session.request(method, url, timeout=self.timeout, **kwargs)
            if answer.status_code in TRANSIENT_STATUS:
                answer.raise_for_status()
        except requests.RequestException as exc:
            raise from_requests(exc, f"the Image Factory at {self.base_url}: {what}") from None
        return answer

    async def _call(self, what: str, method: str, path: str, **kwargs: Any) -> requests.Response:
        try:
            return await retry_async(lambda: asyncio.to_thread(self._request, what, method, path, **kwargs), policy=self.policy,
                                     on_retry=self.on_retry, what=what)
        except RetryExhausted as exc:
            raise OperationError(f"the Image Factory at {self.base_url} kept failing ({what}): {exc.message}",
                                 hint="check the factory is reachable (clusters[].image_factory), then run again") from exc

    async def register(self, schematic_yaml: str) -> str:
        """POST the schematic; returns the ID the factory gives it."""
        answer = await self._call("register the schematic", "POST", "/schematics", data=schematic_yaml.encode(),
                                  headers={"Content-Type": "application/yaml"})
        if answer.status_code == 401:
            raise AuthenticationFailed(f"the Image Factory at {self.base_url} refused the request: HTTP 401",
                                       hint="an Enterprise factory wants credentials tierzero does not send: use one that serves without them "
                                            "(clusters[].image_factory)", status=401)
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

    async def download(self, image_url: str, dest: Path) -> Path:
        """The image at `image_url` (under this factory) streamed into `dest` (written as dest.part, then
        renamed: a file at `dest` is always whole)."""
        path = image_url.removeprefix(self.base_url)
        tmp = dest.with_suffix(dest.suffix + ".part")

        def fetch() -> None:
            url = self.base_url + path
            calls.sent("http", urlsplit(url).netloc, calls.http_request("GET", url))
            try:
                with self.session.get(url, timeout=self.timeout, stream=True) as answer:
                    if answer.status_code != 200:
                        raise OperationError(f"the Image Factory at {self.base_url} refused {path}: HTTP {answer.status_code} "
                                             f"{answer.text.strip()[:300]}", hint="check the Talos version, arch and extensions of the cluster")
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    with tmp.open("wb") as out:
                        for chunk in answer.iter_content(1024 * 1024):
                            out.write(chunk)
            except requests.RequestException as exc:
                raise from_requests(exc, f"the Image Factory at {self.base_url}: download {path}") from None
            tmp.replace(dest)

        await asyncio.to_thread(fetch)
        return dest

    async def versions(self) -> list[str]:
        answer = await self._call("list the Talos versions", "GET", "/versions")
        try:
            return [str(v) for v in json.loads(answer.text)]
        except (ValueError, TypeError):
            return []

    def close(self) -> None:
        self.session.close()
