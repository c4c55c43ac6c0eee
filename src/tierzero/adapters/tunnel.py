"""The way in through the bastion: private addresses (the Proxmox API on the hosts' VCN addresses,
the Talos API and the Kubernetes VIP on the VM network, Infisical) reached through SSH local
forwarding over the bastion, with asyncssh.

On the `oci-free-tier` blueprint only the bastion (an E2.1.Micro with a public address, SSH 22
from `admin_cidrs`) answers from the user's machine. `Connections.endpoint` passes every endpoint
through `BastionTunnel.reach`: a private address (RFC 1918 and the other non-global ranges, never
loopback) becomes a listener on 127.0.0.1 whose connections the bastion opens to the address
(`direct-tcpip`, RFC 4254 §7.2), so proxmoxer, gRPC and the Kubernetes client stay unchanged.
Forwards are opened on first use and kept for the life of the tunnel; the SSH connection runs on
a thread of its own, since most clients are synchronous.

The bastion runs its image's stock sshd: tierzero configures no `PermitOpen`/`AllowTcpForwarding`
restriction there (sshd_config(5) defaults: forwarding to any destination). What guards it is the
security list (SSH from `admin_cidrs` only) and key-only login with the workspace key; a user who
wants forwarding limited to the VCN sets `PermitOpen` on the instance themselves.

Errors: `BastionUnreachable` (an OperationError naming the bastion) when the bastion is unknown
or does not answer; a refused forward (a `PermitOpen` the user set) or a refused connection
behind it closes the forwarded connection, which the client reports as its own connection error.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from tierzero.adapters.errors import AuthenticationFailed
from tierzero.errors import OperationError

if TYPE_CHECKING:
    import asyncssh

    from tierzero.adapters.connections import Connections, Endpoint
    from tierzero.adapters.ssh import SshClient, SshTarget

T = TypeVar("T")
BASTION = "bastion"  # the kind of the (BASTION, instance name) endpoint the cloud phase publishes


THREADS = {"tierzero-bastion", "bastion"}  # the tunnel's loop, and the sandbox's bastion


class _ClosedWrites(logging.Filter):
    """A forwarded connection closed by one end while the other still sends: asyncio logs
    "socket.send() raised exception." for the dropped writes (selector_events, 3.11); sshd drops
    them silently. Only on the forwarding threads; anything else asyncio says still shows."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.threadName in THREADS and record.getMessage().startswith("socket.send() raised exception"))


logging.getLogger("asyncio").addFilter(_ClosedWrites())


class BastionUnreachable(OperationError):
    """The bastion is not known yet, or its SSH server does not answer."""


def is_private(host: str) -> bool:
    """Whether `host` is an IP address only reachable inside a private network (RFC 1918, CGNAT
    100.64/10, link-local, ULA; `ipaddress` `is_private`, plus 100.64/10). Names and loopback: False."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    if ip.is_loopback or ip.is_unspecified:
        return False
    return ip.is_private or (ip.version == 4 and ip in ipaddress.ip_network("100.64.0.0/10"))


@dataclass(frozen=True)
class Forward:
    """One open forward: 127.0.0.1:`local_port` reaches `host`:`port` through the bastion."""

    host: str
    port: int
    local_port: int


class BastionTunnel:
    """Local forwards through the bastion, opened on demand. `connections` supplies the bastion's
    ("bastion", instance name) endpoint (published by the cloud phase), known_hosts
    (trust on first use, as for the hosts) and the "ssh" retry policy. Thread-safe; `close()`
    ends the forwards and the connection."""

    def __init__(self, connections: Connections, *, key_path: Path | None = None, connect_timeout: float = 15.0) -> None:
        self.connections = connections
        self.key_path = key_path or connections.ssh_key
        self.name = BASTION  # the bastion instance's name, once its endpoint is known
        self.connect_timeout = connect_timeout
        self.forwards: dict[tuple[str, int], Forward] = {}
        self._listeners: dict[tuple[str, int], asyncssh.SSHListener] = {}
        self._client: SshClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._rebinding = asyncio.Lock()  # on the loop: one rebind or open at a time
        self._bound: asyncssh.SSHClientConnection | None = None  # the connection the listeners run over
        self._closing = False
        self._watcher: asyncio.Task[None] | None = None

    # -- what Connections asks
    def behind(self, kind: str, name: str, endpoint: Endpoint) -> tuple[str, int] | None:
        """The private address and port `endpoint` stands for, or None when it is reached directly:
        SSH is (the cloud instances answer SSH 22 from admin_cidrs on their public addresses), and
        so is every public address. The sandbox overrides this: its endpoints are loopback stand-ins."""
        if endpoint.scheme == "ssh" or endpoint.extra.get("via") or not is_private(endpoint.host):
            return None
        return endpoint.host, endpoint.port

    def reach(self, kind: str, name: str, endpoint: Endpoint) -> Endpoint:
        """`endpoint` itself, or the local end of its forward: 127.0.0.1 and the forward's port,
        `extra["via"]` the bastion, `extra["tls_server_name"]` the private address. Talos' apid and
        kube-apiserver certificates always name 127.0.0.1 (Talos v1.14 controllers/secrets
        api_cert_sans.go, kubernetes_cert_sans.go), so TLS verifies on the local end as well."""
        target = self.behind(kind, name, endpoint)
        if target is None:
            return endpoint
        fwd = self.forward(*target)
        extra = {**endpoint.extra, "via": self.name, "tls_server_name": target[0], "behind": f"{target[0]}:{target[1]}"}
        return replace(endpoint, host="127.0.0.1", port=fwd.local_port, extra=extra)

    @property
    def connected(self) -> bool:
        """Whether the forwards run over a live SSH connection to the bastion."""
        return self._bound is not None and not self._bound.is_closed()

    # -- forwards
    def forward(self, host: str, port: int) -> Forward:
        """The forward to `host`:`port`, opened now if it is not open (BastionUnreachable)."""
        with self._lock:
            found = self.forwards.get((host, port))
            if found is not None and self.connected:
                return found
            return self._run(self._ensure(host, port))

    async def _ensure(self, host: str, port: int) -> Forward:
        async with self._rebinding:
            conn = await self._connection()
            if self._bound is not conn:
                await self._rebind(conn)
            found = self.forwards.get((host, port))
            if found is None:
                listener = await conn.forward_local_port("127.0.0.1", 0, host, port)
                self._listeners[(host, port)] = listener
                found = self.forwards[(host, port)] = Forward(host, port, listener.get_port())
            return found

    async def _rebind(self, conn: asyncssh.SSHClientConnection) -> None:
        """Listen again on the same local ports over a new connection (clients keep their endpoints),
        and watch it: when it drops, reconnect at once (with the "ssh" retry policy)."""
        for key, fwd in self.forwards.items():
            old = self._listeners.pop(key, None)
            if old is not None:
                old.close()
            self._listeners[key] = await conn.forward_local_port("127.0.0.1", fwd.local_port, fwd.host, fwd.port)
        self._bound = conn
        self._watcher = asyncio.get_running_loop().create_task(self._watch(conn))

    async def _watch(self, conn: asyncssh.SSHClientConnection) -> None:
        await conn.wait_closed()
        if self._closing or not self.forwards:
            return
        try:
            async with self._rebinding:
                if self._bound is conn:
                    await self._rebind(await self._connection())
        except (OperationError, OSError):
            pass  # still down: the next forward() tries again, and fails naming the bastion

    def _target(self) -> SshTarget:
        from tierzero.adapters.ssh import SshTarget

        found = next(((name, ep) for (kind, name), ep in self.connections.endpoints.items() if kind == BASTION), None)
        if found is None:
            raise BastionUnreachable(
                "private addresses are reached through the bastion, and no bastion address is known",
                hint="run the cloud phase first (it publishes the bastion's public address), and keep a micro instance with role bastion in the spec",
            )
        name, ep = found
        known = self.connections.known_hosts
        if self.key_path is None or known is None:
            raise BastionUnreachable(f"no SSH key or known_hosts file configured for the bastion {name}", hint="run `tierzero init` to create the workspace key")
        self.name = name
        return SshTarget(name=f"bastion {name}", host=ep.host, port=ep.port, user=str(ep.extra.get("user", "ubuntu")),
                         key_path=self.key_path, known_hosts=known)

    async def _connection(self) -> asyncssh.SSHClientConnection:
        from tierzero.adapters.ssh import SshClient

        if self._client is None:
            self._client = SshClient(self._target(), policy=self.connections.retry.policy("ssh"), connect_timeout=self.connect_timeout)
        try:
            return await self._client.connection()
        except OperationError as exc:
            label = self._client.target.label
            self._client = None
            refused = isinstance(exc, AuthenticationFailed)
            raise BastionUnreachable(
                f"the bastion {label} {'refuses the login' if refused else 'does not answer'}, so no private address can be reached: {exc.message}",
                hint="check the bastion instance is running, its public address is reachable on SSH 22 from this machine "
                     "(admin_cidrs in the spec) and the workspace key is authorised there",
            ) from exc

    # -- the loop thread
    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self._loop.run_forever, name="tierzero-bastion", daemon=True)
            self._thread.start()
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def close(self) -> None:
        """Close every forward and the SSH connection; the tunnel may be opened again later."""
        with self._lock:
            if self._loop is None:
                return
            self._closing = True

            async def shut() -> None:
                for listener in self._listeners.values():
                    listener.close()
                self._listeners.clear()
                if self._client is not None:
                    await self._client.close()
                    self._client = None

            asyncio.run_coroutine_threadsafe(shut(), self._loop).result()
            self._loop.call_soon_threadsafe(self._loop.stop)
            if self._thread is not None:
                self._thread.join()
            self._loop.close()
            self._loop, self._thread, self._bound, self._closing = None, None, None, False
            self._rebinding = asyncio.Lock()
            self.forwards.clear()

