"""The internet, as the sandbox has it: none (`STANDIN`, "internet"). Every fetch tierzero
would make over HTTPS (Argo CD's pinned install, a flux CLI download) is refused with the URL
named, so a sandbox run can neither reach the internet nor pretend it did."""

from __future__ import annotations

from tierzero.errors import OperationError
from tierzero.sandbox.context import SandboxContext, StandIn, Stop


def refuse(url: str) -> str:
    raise OperationError(f"the sandbox has no internet: GET {url} refused",
                         hint="a sandbox run uses only what is on this machine; this part needs the real target")


def refuse_bytes(url: str) -> bytes:
    refuse(url)
    return b""


def _start(box: SandboxContext) -> Stop:
    box.connections.fetch = refuse
    box.connections.fetch_bytes = refuse_bytes
    return lambda: None


STANDIN = StandIn("internet", _start)
