"""Plain HTTPS reads of public resources (the pinned install manifests a GitOps bootstrap lists)."""

from __future__ import annotations

from tierzero.adapters.connections import Connections, Fetch, FetchBytes
from tierzero.errors import OperationError


def fetch_text(url: str, *, timeout: float = 120.0) -> str:
    """GET `url` and return its body; any failure is a tierzero error naming the URL
    (`tierzero.adapters.errors.from_requests`)."""
    import requests

    from tierzero.adapters import calls
    from tierzero.adapters.errors import from_requests

    calls.sent("http", url.split("/")[2] if "://" in url else url, calls.http_request("GET", url))
    try:
        resp = requests.get(url, timeout=timeout)
        resp.raise_for_status()
    except requests.RequestException as exc:
        raise from_requests(exc, f"GET {url}") from exc
    return resp.text


def fetch_binary(url: str, *, timeout: float = 300.0, limit: int = 512 * 1024 * 1024) -> bytes:
    """GET `url` and return its body (at most `limit` bytes); failures are tierzero errors naming the URL."""
    import requests

    from tierzero.adapters import calls
    from tierzero.adapters.errors import from_requests

    calls.sent("http", url.split("/")[2] if "://" in url else url, calls.http_request("GET", url))
    try:
        with requests.get(url, timeout=timeout, stream=True) as resp:
            resp.raise_for_status()
            body = bytearray()
            for chunk in resp.iter_content(1 << 20):
                body += chunk
                if len(body) > limit:
                    raise OperationError(f"GET {url}: the answer is larger than {limit // (1 << 20)} MiB")
            return bytes(body)
    except requests.RequestException as exc:
        raise from_requests(exc, f"GET {url}") from exc


def fetcher_bytes(connections: Connections) -> FetchBytes:
    return connections.fetch_bytes or fetch_binary


def fetcher(connections: Connections) -> Fetch:
    """How this target reads remote resources: the target's own (the sandbox is offline), else HTTPS."""
    return connections.fetch or fetch_text
