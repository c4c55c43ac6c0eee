"""Every request an adapter sends to the outside, reported as it is sent.

Adapters call `sent(via, target, request)` right before each attempt goes out (a retried call is
reported once per attempt): an SSH command, a Proxmox or Kubernetes or OCI or Infisical HTTP
request, a Talos RPC, an OpenTofu invocation, a plain HTTP download, a git run that talks to a
remote. Whoever runs the adapters
binds a receiver with `bind()` — the engine binds one per step, so each report carries its step —
and the receiver turns it into a `call` event (see `tierzero.engine.progress` for the schema).

The receiver lives in a context variable: it follows asyncio tasks and `asyncio.to_thread`
(which copies the context), so a step's calls are attributed to that step even when they run
concurrently or in worker threads. With nothing bound, `sent` does nothing.

Only what identifies a request is reported (command line, method and path, RPC name, argv),
never bodies, stdin or environment values; receivers still pass every field through the
process redactor before showing or writing it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import Any

Receiver = Callable[..., None]  # receiver(via=..., target=..., request=..., **extra)

VIAS = ("ssh", "proxmox", "talos", "kubernetes", "oci", "infisical", "tofu", "http", "git")

_receiver: ContextVar[Receiver | None] = ContextVar("tierzero_call_receiver", default=None)


def sent(via: str, target: str, request: str, **extra: Any) -> None:
    """Report one request about to be sent. `via` is one of VIAS; `target` names the host,
    node, cluster or working directory; `request` is the command or "METHOD /path"."""
    receiver = _receiver.get()
    if receiver is not None:
        receiver(via=via, target=target, request=request, **extra)


def bind(receiver: Receiver | None) -> Token[Receiver | None]:
    """Send this context's reports (and those of tasks and threads started from it) to receiver."""
    return _receiver.set(receiver)


def unbind(token: Token[Receiver | None]) -> None:
    _receiver.reset(token)


@contextmanager
def receiving(receiver: Receiver | None) -> Iterator[None]:
    token = bind(receiver)
    try:
        yield
    finally:
        unbind(token)


def http_request(method: str, url: str) -> str:
    """"METHOD /path?query" of a URL: the host goes in the report's target."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{method.upper()} {parts.path or '/'}" + (f"?{parts.query}" if parts.query else "")


def params_text(params: dict[str, Any], limit: int = 60) -> str:
    """Request parameters as "key=value ...", long values shortened (bodies can be large)."""
    out = []
    for key in sorted(params):
        value = str(params[key])
        if len(value) > limit:
            value = value[: limit - 1] + "…"
        out.append(f"{key}={value}")
    return " ".join(out)
