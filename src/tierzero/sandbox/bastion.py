"""The bastion: the E2.1.Micro with a public address that an `oci-free-tier` deploy reaches every
private address through (tierzero.adapters.tunnel). An asyncssh server on loopback playing the
platform image's stock sshd: it accepts the keys the instance was launched with and opens
`direct-tcpip` channels (RFC 4254 §7.2) to any destination; the channels it opened are recorded,
so a test can tell a call went through it.

Rules, each with its source:
- Logins: public key only, as the platform image's default user (`ubuntu` on Canonical Ubuntu;
  OCI docs "Connecting to Your Linux Instance"); root is refused. The keys are those of the
  instance's `ssh_authorized_keys` metadata, which cloud-init writes into that user's
  authorized_keys (OCI API reference, LaunchInstanceDetails.metadata "ssh_authorized_keys"): the
  key the product launched it with, read at each login, so an instance launched with another key
  refuses the workspace key; an instance not launched yet accepts none.
- Forwarding is not restricted: stock sshd has `AllowTcpForwarding yes` and `PermitOpen any`
  (sshd_config(5), OpenSSH 9.6 as on Ubuntu 24.04), and tierzero configures no restriction on the
  bastion (its security list admits SSH from `admin_cidrs` only; see tierzero.adapters.tunnel).
- A destination nothing answers on fails with SSH2_OPEN_CONNECT_FAILED and the connect(2) error
  (OpenSSH 9.6 channels.c `connect_next`/`channel_connect_ctx_free`).
- The bastion plays no network of its own: where an address:port is served in the sandbox is
  the `network` callable's answer (the stand-in playing that address on loopback).
- What the VCN does not deliver (`route`: the sandbox's OCI, `OciState.vcn_route`: no route rule to
  the VM network, a target VNIC that checks source/destination, a port the security list does not
  admit) fails as an unanswered connect does: SSH2_OPEN_CONNECT_FAILED, "Connection timed out".
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import asyncssh

from tierzero.adapters.connections import Connections, Endpoint
from tierzero.adapters.tunnel import BASTION, BastionTunnel
from tierzero.sandbox.context import Handle, SandboxContext, StandIn, Stop

Network = Callable[[str, int], "tuple[str, int] | None"]  # (address, port) -> the loopback (host, port) playing it


@dataclass
class Channel:
    """One direct-tcpip request the bastion answered: the destination asked for, and whether it opened."""

    host: str
    port: int
    opened: bool


@dataclass
class BastionServer:
    """`authorized_keys`: the instance's `ssh_authorized_keys` metadata now (OpenSSH lines, one a
    line; "" before it was launched). `start()` listens on 127.0.0.1 (port 0: assigned), `stop()` closes."""

    network: Network
    authorized_keys: Callable[[], str]
    user: str = "ubuntu"
    port: int = 0
    channels: list[Channel] = field(default_factory=list)
    host_key: asyncssh.SSHKey | None = None
    route: Callable[[str, int], "str | None"] = lambda host, port: None  # None: the VCN delivers it, else why not

    def __post_init__(self) -> None:
        self.lost: list[str] = []  # why each packet the VCN did not deliver was lost
        self._host_key = self.host_key or asyncssh.generate_private_key("ssh-ed25519")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="bastion", daemon=True)
        self._server: asyncssh.SSHAcceptor | None = None
        self._sessions: set[asyncssh.SSHServerConnection] = set()
        self._lock = threading.Lock()

    def accepts(self, key_blob: str) -> bool:
        """Whether the key (its base64 part) is one of the instance's authorized keys."""
        lines = (line.split() for line in self.authorized_keys().splitlines())
        return any(len(words) >= 2 and words[1] == key_blob for words in lines)

    # -- lifecycle
    def start(self) -> BastionServer:
        self._thread.start()
        self._call(self._listen())
        return self

    async def _listen(self) -> None:
        self._server = await asyncssh.listen(
            "127.0.0.1", self.port, server_host_keys=[self._host_key], server_factory=lambda: _Login(self), reuse_address=True,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    def set_down(self, down: bool = True) -> None:
        """The bastion stops answering (connection refused), or answers again on the same port."""
        self._call(self._close() if down else self._listen())

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for conn in list(self._sessions):
            conn.close()
        self._sessions.clear()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._call(self._close())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(30)

    def opened(self) -> list[tuple[str, int]]:
        with self._lock:
            return [(c.host, c.port) for c in self.channels if c.opened]

    def _record(self, host: str, port: int, opened: bool) -> None:
        with self._lock:
            self.channels.append(Channel(host, port, opened))


class _Login(asyncssh.SSHServer):
    def __init__(self, bastion: BastionServer) -> None:
        self.bastion = bastion
        self.conn: asyncssh.SSHServerConnection | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.conn = conn
        self.bastion._sessions.add(conn)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.conn is not None:
            self.bastion._sessions.discard(self.conn)

    def begin_auth(self, username: str) -> bool:
        return True

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        return username == self.bastion.user and self.bastion.accepts(key.export_public_key("openssh").decode().split()[1])

    def connection_requested(self, dest_host: str, dest_port: int, orig_host: str, orig_port: int) -> Any:
        bastion = self.bastion
        lost = bastion.route(dest_host, dest_port)
        if lost is not None:
            bastion._record(dest_host, dest_port, False)
            bastion.lost.append(lost)
            raise asyncssh.ChannelOpenError(asyncssh.OPEN_CONNECT_FAILED, "Connection timed out")
        played = bastion.network(dest_host, dest_port)
        if played is None or self.conn is None:
            bastion._record(dest_host, dest_port, False)
            raise asyncssh.ChannelOpenError(asyncssh.OPEN_CONNECT_FAILED, "No route to host")
        bastion._record(dest_host, dest_port, True)
        return self.conn.forward_connection(*played)


# ---------------------------------------------------------------------------- in the sandbox

SERVER: Handle[BastionServer] = Handle("bastion")


def stands_for(box: SandboxContext) -> dict[tuple[str, str], tuple[str, int]]:
    """(kind, name) of a stand-in's endpoint -> the private address and port it plays: each Talos
    node on the VM network (50000), each cluster's endpoint (the VIP, 6443), each Proxmox host's
    API on its VCN address (8006), each Infisical on its LXC's address (8080)."""
    from urllib.parse import urlparse

    from tierzero.render.services.infisical import API_PORT
    from tierzero.sandbox.pve_hosts import hosts_for_spec

    spec = box.spec
    out: dict[tuple[str, str], tuple[str, int]] = {}
    for name, address in hosts_for_spec(spec)[0] if spec.has_proxmox else []:
        out[("proxmox", name)] = (str(address), 8006)
    for cluster in spec.clusters:
        url = urlparse(cluster.endpoint)
        if url.hostname:
            out[("kubernetes", cluster.name)] = (url.hostname, url.port or 6443)
        for _, node in cluster.nodes():
            if node.ip.address:
                out[("talos", str(node.ip.address))] = (str(node.ip.address), 50000)
    for svc in spec.services:
        if svc.kind == "infisical" and svc.ip.address:
            out[("infisical", svc.name)] = (str(svc.ip.address), API_PORT)
    return out


class SandboxTunnel(BastionTunnel):
    """The production tunnel, for endpoints that are loopback stand-ins: each goes through the
    bastion to the private address it plays, and the bastion's network hands the channel to the stand-in."""

    def __init__(self, connections: Connections, plays: dict[tuple[str, str], tuple[str, int]], **kwargs: Any) -> None:
        super().__init__(connections, **kwargs)
        self.plays = plays

    def behind(self, kind: str, name: str, endpoint: Endpoint) -> tuple[str, int] | None:
        if endpoint.extra.get("via"):
            return None
        return self.plays.get((kind, name))


def _start(box: SandboxContext) -> Stop:
    """With option `bastion` and a spec whose cloud has a micro instance with role bastion: the
    bastion, with the keys the cloud layer launched that instance with (the twin layer's state);
    the sandbox's private addresses are then reached only through it (a `SandboxTunnel` on the connections)."""
    spec = box.spec
    micro = next((m for m in spec.oci.micro_instances if "bastion" in m.roles), None) if spec.oci is not None else None
    if not box.options.bastion or micro is None or spec.oci is None:
        return lambda: None
    conns = box.connections
    plays = stands_for(box)

    def network(host: str, port: int) -> tuple[str, int] | None:
        for key, played in plays.items():
            ep = conns.endpoints.get(key)
            if played == (host, port) and ep is not None:
                return ep.host, ep.port
        return None

    from pathlib import Path

    from tierzero.sandbox import oci
    from tierzero.workspace.keys import load_age_identity

    stack_state = Path(box.workspace.root) / "cloud" / "terraform.tfstate"  # the cloud layer's (see tierzero.sandbox.oci)
    instance = micro.name

    def authorized_keys() -> str:
        resources = oci.stack_resources(oci.stack_text(stack_state, lambda: load_age_identity(box.workspace)))
        return oci.instance_metadata(resources, instance).get("ssh_authorized_keys", "")

    api = box.get(oci.SERVER)  # the VCN as the cloud layer built it: what reaches the VM network
    delivered: Callable[[str, int], str | None] = api.state.vcn_route if api is not None else (lambda host, port: None)
    # The SSH hosts' key: the workspace known_hosts must stay valid whichever stand-in a port served before.
    key_file = box.host_key_file("pve_hosts")
    server = box.put(SERVER, BastionServer(network, authorized_keys, host_key=asyncssh.read_private_key(str(key_file)),
                                           route=delivered).start())
    endpoint = Endpoint("127.0.0.1", server.port, scheme="ssh", verify=False, extra={"user": server.user, "role": BASTION})
    conns.add(BASTION, micro.name, endpoint)
    previous = conns.route

    def route(learned: Endpoint) -> Endpoint | None:  # the cloud phase's published bastion is this server
        if learned.extra.get("role") == BASTION:
            return endpoint
        return previous(learned) if previous is not None else None

    conns.route = route
    tunnel = conns.tunnel = SandboxTunnel(conns, plays, key_path=box.workspace.ssh_key)

    def stop() -> None:
        tunnel.close()
        server.stop()

    return stop


STANDIN = StandIn("bastion", _start)
