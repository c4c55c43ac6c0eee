"""Read a talosconfig (talosctl's client configuration) into the pieces a gRPC client needs.

Format: YAML with `context: <name>` and `contexts.<name>.{endpoints, nodes, ca, crt, key}`,
where ca/crt/key are base64-encoded PEM (the OS CA certificate, the admin client
certificate and its key)."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

import yaml

from tierzero.errors import InputError


@dataclass(frozen=True)
class TalosCredentials:
    context: str
    endpoints: tuple[str, ...]
    nodes: tuple[str, ...]
    ca_pem: bytes
    crt_pem: bytes
    key_pem: bytes


def _pem(ctx: dict[str, Any], field: str, name: str) -> bytes:
    raw = ctx.get(field)
    if not raw:
        raise InputError(f"talosconfig context {name!r} has no {field!r}")
    try:
        data = base64.b64decode(str(raw), validate=False)
    except (binascii.Error, ValueError) as err:
        raise InputError(f"talosconfig context {name!r}: {field!r} is not base64: {err}") from None
    if b"-----BEGIN" not in data:
        raise InputError(f"talosconfig context {name!r}: {field!r} does not decode to PEM")
    return data


def parse_talosconfig(text: str | bytes, context: str | None = None) -> TalosCredentials:
    """Parse talosconfig YAML; `context` defaults to the file's current context."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise InputError(f"talosconfig is not valid YAML: {err}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("contexts"), dict) or not doc["contexts"]:
        raise InputError("talosconfig has no contexts")
    contexts: dict[str, Any] = doc["contexts"]
    name = context or doc.get("context") or next(iter(contexts))
    ctx = contexts.get(name)
    if not isinstance(ctx, dict):
        raise InputError(f"talosconfig has no context {name!r}", hint=f"known: {', '.join(map(str, contexts))}")
    return TalosCredentials(
        context=str(name),
        endpoints=tuple(str(e) for e in ctx.get("endpoints") or ()),
        nodes=tuple(str(n) for n in ctx.get("nodes") or ()),
        ca_pem=_pem(ctx, "ca", name),
        crt_pem=_pem(ctx, "crt", name),
        key_pem=_pem(ctx, "key", name),
    )
