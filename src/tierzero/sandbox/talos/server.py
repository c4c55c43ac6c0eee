"""An in-process stand-in for the Talos machine API, one gRPC server per node, on loopback.

A node starts in maintenance mode: TLS with a throwaway self-signed certificate, no client
certificate asked; what it serves there depends on its Talos release (see `tierzero.sandbox.talos.rpc`).
ApplyConfiguration reads the machine config (multi-document YAML; the v1alpha1 document's
`machine.type`, `machine.ca`; the cluster name from `cluster.clusterName` or a
KubeClusterConfig document), "reboots" (the port closes for `reboot_seconds`) and comes
back with mutual TLS: a server certificate issued by the
config's OS CA, client certificates required and checked against it. Nodes of one cluster
share a `TalosSandboxCluster` (bootstrap once, etcd members, the OS CA key a worker's
trustd would fetch). TLS is terminated by Python's `ssl` in front of a plaintext gRPC
server, so Ed25519 OS CAs (the Talos default) work as on a real node.

Fault injection on `TalosNodeServer`: `down_calls` (the next N calls fail UNAVAILABLE),
`reject_apply` (ApplyConfiguration fails INVALID_ARGUMENT with that message) and `fail_upgrades`
(the next N upgrades do not boot: the node comes back at its previous version, as Talos' A-B
scheme rolls back an upgrade that fails to boot; docs.siderolabs.com, "Upgrading Talos Linux").

A node booted from an image (`image`: the sandbox Image Factory's description of it, and the
VM's NIC MACs) reports that image's Talos version, platform and arch, names its links as that
platform's kernel arguments make Linux name them, and holds only the addresses its configuration
(or its NoCloud network-config) puts on links that exist (`tierzero.sandbox.talos.links`); which
address reaches which node is `tierzero.sandbox.talos.network`'s business. Source of the Version
fields: siderolabs/talos v1.12.11 api/machine/machine.proto and v1alpha1_server.go Version
(platform name and mode: `cloud` for nocloud/oracle, `metal` for metal).

Async code calls `start_node(...)`; synchronous code (the sandbox's "talos" stand-in, see
`tierzero.sandbox.talos`) uses `TalosSandboxThread`, which hosts the nodes on its own loop. `TalosSandboxRegistry.persist`, when set, is called after every
change a client can observe (apply, bootstrap, reset), before the RPC answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
from typing import Any, Callable

import grpc
import yaml

from tierzero.adapters.connections import Endpoint
from tierzero.adapters.talos_proto import machine_pb2_grpc
from tierzero.sandbox.talos.cluster import TalosSandboxCluster, TalosSandboxRegistry  # noqa: F401  (re-exported)
from tierzero.sandbox.talos.rpc import Mode, _default_kubeconfig, _Servicer  # noqa: F401  (re-exported)
from tierzero.sandbox.talos.relay import splice
from tierzero.sandbox.talos.links import Addressing, Link, config_addressing, machine_links, platform_addressing
from tierzero.sandbox.talos.tls import (  # noqa: F401  (ConfigError, parse_machine_config are public here too)
    ConfigError,
    MachineConfigSummary,
    server_context,
    issue_server_cert,
    maintenance_cert,
    parse_machine_config,
)

KubeconfigProvider = Callable[[str, str], "bytes | str"]  # (cluster name, node address) -> kubeconfig


# -- the node --------------------------------------------------------------------------------

class TalosNodeServer:
    def __init__(
        self, address: str, *, registry: TalosSandboxRegistry, hostname: str | None = None,
        kubeconfig: KubeconfigProvider | None = None, reboot_seconds: float = 0.3, version: str = "v1.9.5",
        image: dict[str, Any] | None = None, macs: list[str] | tuple[str, ...] = (),
        network_config: list[dict[str, Any]] | None = None, key: str | None = None,
    ) -> None:
        self.address, self.registry = address, registry
        self.key = key or address  # what the node is to its cluster and the world: its VM, or its address
        self.image = dict(image) if image else None
        self.macs = [m.lower() for m in macs]
        self.network_config = network_config  # the NoCloud network-config it read at boot (None: none)
        self._addressing: tuple[Any, Addressing] | None = None
        self.powered = False  # its VM runs (it may still be rebooting, or waiting for trustd)
        if self.image:
            version = str(self.image.get("version") or version)
        self.hostname = hostname or f"talos-{address.replace('.', '-').replace(':', '-').replace('/', '-')}"
        self.kubeconfig_provider = kubeconfig
        self.reboot_seconds, self.version_tag = reboot_seconds, version
        self.next_version: str | None = None  # installed by an upgrade, running after the reboot
        self.config: MachineConfigSummary | None = None
        self.in_etcd = False
        self.recovery_snapshot: bytes | None = None  # uploaded by EtcdRecover (/var/lib/etcd.snapshot)
        self.etcd_failure: str | None = None  # why its etcd service failed to start
        self.down_calls = 0
        self.reject_apply: str | None = None
        self.fail_upgrades = 0  # the next N upgrades fail to boot and roll back (fault injection)
        self.calls: list[str] = []
        self.port = 0
        self._grpc: grpc.aio.Server | None = None
        self._backend_port = 0
        self._front: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def maintenance(self) -> bool:
        return self.config is None

    @property
    def answering(self) -> bool:
        """Powered and listening: not halted, not in the middle of a reboot."""
        return self.powered and self._front is not None

    # what the machine is: its image, links and addresses
    @property
    def platform(self) -> tuple[str, str]:
        """(name, mode) as the Version API reports them."""
        name = str((self.image or {}).get("platform") or "nocloud")
        return name, "metal" if name == "metal" else "cloud"

    @property
    def links(self) -> list[Link]:
        return machine_links(list((self.image or {}).get("kernel_args") or ()), self.macs) if self.image else []

    def addressing(self) -> Addressing:
        """The addresses on this machine's links: its NoCloud network-config, then its machine config
        (worked out once per config: the network asks on every connection)."""
        key = (self.config.raw if self.config else None, tuple(self.macs), repr(self.network_config), repr(self.image))
        if self._addressing is not None and self._addressing[0] == key:
            return self._addressing[1]
        links = self.links
        out = platform_addressing(links, self.network_config)
        if self.config is not None:
            loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
            docs = [d for d in yaml.load_all(self.config.raw, Loader=loader) if isinstance(d, dict)]  # noqa: S506 - a safe loader
            mine = config_addressing(links, docs)
            for link, cidrs in mine.addresses.items():
                out.addresses.setdefault(link, []).extend(cidrs)
            out.vips, out.dhcp, out.unapplied = mine.vips, out.dhcp + mine.dhcp, out.unapplied + mine.unapplied
        self._addressing = (key, out)
        return out

    def held_addresses(self) -> set[str]:
        """The IPs this node answers at (a node not booted from an image: its own address)."""
        if self.image is None:
            return {self.address}
        return self.addressing().ips()

    @property
    def cluster(self) -> TalosSandboxCluster | None:
        return self.registry.clusters.get(self.config.cluster_name) if self.config else None

    def endpoint(self) -> Endpoint:
        """What to register in `Connections` as ("talos", address)."""
        return Endpoint(host="127.0.0.1", port=self.port)

    # lifecycle
    async def start(self, port: int = 0) -> int:
        self._loop = asyncio.get_running_loop()
        self.powered = True
        self._grpc = grpc.aio.server()
        machine_pb2_grpc.add_MachineServiceServicer_to_server(_Servicer(self), self._grpc)
        self._backend_port = self._grpc.add_insecure_port("127.0.0.1:0")
        await self._grpc.start()
        if self._tls_context() is None:  # a restored worker waiting for trustd: its port is known before it answers
            self.port = port or _free_port()
            self._spawn(self._listen(self.port))
        else:
            await self._listen(port)
        return self.port

    async def stop(self) -> None:
        self.powered = False
        for task in list(self._tasks):
            task.cancel()
        await self._unlisten()
        if self._grpc is not None:
            await self._grpc.stop(0)
            self._grpc = None

    def _tls_context(self) -> ssl.SSLContext | None:
        addressing = self.addressing() if self.image else None
        extra = sorted(addressing.ips() | {ip for ip, _ in addressing.vips}) if addressing else []
        names = list(dict.fromkeys(["127.0.0.1", "localhost", self.address, self.hostname, *extra]))
        if self.config is None:
            return server_context(*maintenance_cert(names), client_ca=None)
        key = self.config.os_ca_key or (self.cluster.os_ca_key if self.cluster else None)
        if key is None:
            return None  # a worker waits for trustd on a control plane
        names = list(dict.fromkeys([*names, *self.config.cert_sans]))
        return server_context(*issue_server_cert(self.config.os_ca_crt, key, names), client_ca=self.config.os_ca_crt)

    async def _listen(self, port: int) -> None:
        ctx = self._tls_context()
        while ctx is None:
            await asyncio.sleep(0.1)
            ctx = self._tls_context()
        self._front = await asyncio.start_server(self._relay, "127.0.0.1", port, ssl=ctx, reuse_address=True)
        self.port = int(self._front.sockets[0].getsockname()[1])
        self.registry.node_state(self, True)

    async def _unlisten(self) -> None:
        if self._front is None:
            return
        self._front.close()
        for w in list(self._writers):
            with contextlib.suppress(Exception):
                w.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._front.wait_closed(), 1.0)
        self._front = None

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._backend_port)
        except OSError:
            writer.close()
            return
        self._writers.add(up_writer)
        await splice(reader, writer, up_reader, up_writer)
        self._writers.difference_update((writer, up_writer))

    async def power_on(self) -> None:
        """Bring a halted node (reset without reboot, or its VM stopped) back up on its port; a
        worker without its OS CA key answers once a control plane of its cluster has it."""
        self.powered = True
        if self._front is None:
            if self._tls_context() is None:
                self._spawn(self._listen(self.port))
            else:
                await self._listen(self.port)

    async def power_off(self) -> None:
        """Halt the node: its API stops answering until `power_on`."""
        self.powered = False
        for task in list(self._tasks):
            task.cancel()
        await self._unlisten()
        self.registry.node_state(self, False)

    def switch(self, on: bool, timeout: float = 10.0) -> None:
        """`power_on`/`power_off` from any thread (tests, fault scenarios): run on the node's loop."""
        assert self._loop is not None, "the node was never started"
        asyncio.run_coroutine_threadsafe(self.power_on() if on else self.power_off(), self._loop).result(timeout)

    def reboot_soon(self, *, halt: bool = False) -> None:
        """Close the port shortly (after the reply is out), come back after `reboot_seconds`."""

        if halt:
            self.powered = False

        async def cycle() -> None:
            await asyncio.sleep(0.05)
            await self._unlisten()
            self.registry.node_state(self, False)
            if halt:
                return
            await asyncio.sleep(self.reboot_seconds)
            if self.next_version is not None:
                self.version_tag, self.next_version = self.next_version, None
            await self._listen(self.port)

        self._spawn(cycle())

    def upgrade_soon(self, installed: dict[str, Any]) -> None:
        """Install what the installer carries on the boot disk now (it is what boots next, even if
        whoever asked goes away) and reboot into it: `version_tag` changes when the node is back."""
        if self.fail_upgrades > 0:  # the new version does not boot: Talos falls back to the previous one (A-B)
            self.fail_upgrades -= 1
            self.reboot_soon()
            return
        if self.image is not None:
            self.image = {**self.image, "version": installed["version"], "schematic": installed["schematic"],
                          "extensions": list(installed["extensions"])}
        self.next_version = str(installed["version"])
        self.registry.changed()
        self.reboot_soon()

    async def settled(self, timeout: float = 60.0) -> None:
        """Wait (at most `timeout` s) until the power cycles under way, like the reboot after an
        apply or a reset, are over: tests wait on this instead of sleeping."""
        pending = [t for t in self._tasks if not t.done()]
        if pending:
            await asyncio.wait_for(asyncio.gather(*pending, return_exceptions=True), timeout)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # state changes
    def configure(self, config: MachineConfigSummary) -> None:
        if self.config is not None and self.cluster is not None:
            self.cluster.nodes.pop(self.key, None)
        self.config = config
        if config.hostname:
            self.hostname = config.hostname
        cluster = self.registry.cluster(config.cluster_name)
        cluster.nodes[self.key] = self
        held = sorted(self.held_addresses() - {self.address})
        if self.image and self.address not in self.held_addresses() and held:
            self.address = held[0]  # a node is known by the address its config gives it
        if config.os_ca_key:
            cluster.os_ca_key = config.os_ca_key
        self.in_etcd = config.control_plane and cluster.bootstrapped  # joins an existing etcd

    def wipe(self) -> None:
        cluster = self.cluster
        self.config, self.in_etcd = None, False
        self.recovery_snapshot, self.etcd_failure = None, None
        if cluster is not None:
            cluster.nodes.pop(self.key, None)
            if not any(n.config and n.config.control_plane for n in cluster.nodes.values()):
                self.registry.clusters.pop(cluster.name, None)  # etcd data is gone with the last member


class TalosSandboxThread:
    """Runs stand-in nodes on a private event loop in a daemon thread, for synchronous callers
    such as the sandbox harness (clients in any other loop reach them over TCP)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.nodes: list[TalosNodeServer] = []
        self._thread = threading.Thread(target=self.loop.run_forever, name="talos-api-standin", daemon=True)
        self._thread.start()

    def start_node(self, address: str, *, port: int = 0, **kwargs: Any) -> TalosNodeServer:
        return self.start(TalosNodeServer(address, **kwargs), port)

    def start(self, node: TalosNodeServer, port: int = 0) -> TalosNodeServer:
        asyncio.run_coroutine_threadsafe(node.start(port), self.loop).result(30)
        self.nodes.append(node)
        return node

    def stop(self) -> None:
        async def stop_all() -> None:
            for node in self.nodes:
                await node.stop()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(stop_all(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


async def start_node(
    address: str, *, registry: TalosSandboxRegistry, port: int = 0, hostname: str | None = None,
    kubeconfig: KubeconfigProvider | None = None, reboot_seconds: float = 0.3, version: str = "v1.9.5",
) -> tuple[TalosNodeServer, int]:
    """Start one stand-in node in maintenance mode on 127.0.0.1 (ephemeral port by default)."""
    node = TalosNodeServer(
        address, registry=registry, hostname=hostname, kubeconfig=kubeconfig, reboot_seconds=reboot_seconds, version=version
    )
    return node, await node.start(port)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
