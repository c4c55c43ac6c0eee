"""The sandbox's clock (`STANDIN`, "sandbox-clock"): stand-ins reboot in tenths of a second where
real machines take minutes, so waits poll on the same compressed clock (deadlines stay generous)."""

from __future__ import annotations

from tierzero.sandbox.context import SandboxContext, StandIn, Stop


def _start(box: SandboxContext) -> Stop:
    from tierzero.adapters.retry import Policy

    box.connections.retry.wait = Policy(base=0.1, cap=1.0, deadline=120.0)
    return lambda: None


STANDIN = StandIn("sandbox-clock", _start)
