"""The network between the Talos API clients and the stand-in machines: one loopback port per
address the spec names (a node IP or a cluster's shared VIP), relaying a connection to the running
machine that holds that address, and refusing it (closed at once, as an unanswered address
looks to a client) when none does.

- A machine holds the addresses its links carry (`TalosNodeServer.held_addresses`): an address
  its config puts on a link that does not exist is held by no one.
- The shared VIP is held by one control plane, and only once etcd runs there (bootstrapped and a
  member), on the link its config names. Source: siderolabs/talos v1.12.11
  internal/app/machined/pkg/controllers/network/operator/vip.go waitForPreconditions (etcd
  Running and Healthy before the election) and campaign; Talos docs v1.12 networking/advanced/vip
  ("the shared IP will not come alive until after you have bootstrapped Kubernetes").
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Iterable
from typing import TYPE_CHECKING

from tierzero.sandbox.talos.relay import splice

if TYPE_CHECKING:
    from tierzero.sandbox.talos.server import TalosNodeServer


def _running(node: "TalosNodeServer") -> bool:
    return node._front is not None  # noqa: SLF001 - listening: powered on and not rebooting


def vip_eligible(node: "TalosNodeServer", vip: str) -> bool:
    """A control plane whose etcd runs and whose config puts `vip` on a link it has."""
    if node.config is None or not node.config.control_plane or not node.in_etcd:
        return False
    cluster = node.cluster
    if cluster is None or not cluster.bootstrapped:
        return False
    names = {link.name for link in node.links}
    return any(ip == vip and link in names for ip, link in node.addressing().vips)


class TalosNetwork:
    """Addresses -> the machine answering there. `machines` is shared with the stand-in."""

    def __init__(self, machines: dict[str, "TalosNodeServer"]) -> None:
        self.machines = machines
        self.ports: dict[str, int] = {}
        self._servers: list[asyncio.base_events.Server] = []
        self._writers: set[asyncio.StreamWriter] = set()

    def holder(self, address: str) -> "TalosNodeServer | None":
        running = [m for m in self.machines.values() if _running(m)]
        direct = [m for m in running if address in m.held_addresses()]
        if direct:
            return direct[0]
        eligible = [m for m in running if vip_eligible(m, address)]
        return min(eligible, key=lambda m: m.hostname) if eligible else None

    async def listen(self, addresses: Iterable[str]) -> dict[str, int]:
        for address in addresses:
            if address in self.ports:
                continue
            server = await asyncio.start_server(functools.partial(self._relay, address), "127.0.0.1", 0)
            self._servers.append(server)
            self.ports[address] = int(server.sockets[0].getsockname()[1])
        return dict(self.ports)

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        for writer in list(self._writers):
            with contextlib.suppress(Exception):
                writer.close()
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1.0)
        self._servers.clear()

    async def _relay(self, address: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        node = self.holder(address)
        try:
            if node is None:
                raise OSError(f"nobody answers at {address}")
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", node.port)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))
        await splice(reader, writer, up_reader, up_writer)
        self._writers.difference_update((writer, up_writer))
