"""Talos machine API client over gRPC (grpc.aio).

Two ways in, as with talosctl:
- `TalosClient.maintenance(address)`: a node booted from the ISO, not configured yet. TLS
  without verification and without a client certificate (Talos answers with a throwaway
  certificate). `apply_configuration` works there; `version` only from Talos 1.13 on (older
  releases answer UNIMPLEMENTED, `TalosNotImplemented`).
- `TalosClient.authenticated(address, talosconfig)`: a configured node. Mutual TLS with the
  admin certificate and the OS CA from a talosconfig.

Where a node really is comes from `Connections` (kind "talos", name = node address), so a
sandbox run points the same client at a loopback stand-in. TLS is done by Python's `ssl`
through a loopback relay (see talos_proto/tls_relay.py: gRPC's BoringSSL cannot skip
verification nor use Talos' default Ed25519 certificates). Errors come out as
`OperationError`; `TalosUnavailable` (a subclass) marks the ones worth retrying.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import random
import ssl
import tarfile
from typing import Any, Awaitable, Callable, Iterable, TypeVar

import grpc
from google.protobuf import empty_pb2

from tierzero.adapters import calls
from tierzero.adapters.talos_errors import TalosNotImplemented, TalosTLSError, TalosUnavailable
from tierzero.adapters.connections import Connections, Endpoint
from tierzero.adapters.errors import AuthenticationFailed
from tierzero.adapters.protocols import ApplyMode, ApplyResult, EtcdMember, ServiceStatus, VersionInfo
from tierzero.adapters.talos_proto import machine_pb2, machine_pb2_grpc
from tierzero.adapters.talos_proto.tls_relay import TLSRelay, client_context
from tierzero.adapters.talos_proto.talosconfig import TalosCredentials, parse_talosconfig
from tierzero.errors import OperationError

__all__ = [
    "ApplyResult", "EtcdMember", "ServiceStatus", "TalosClient", "TalosCredentials", "TalosNotImplemented",
    "TalosTLSError", "TalosUnavailable", "VersionInfo", "classify_rpc_error", "extract_kubeconfig", "parse_talosconfig",
]

TALOS_API_PORT = 50000
RetryHook = Callable[[int, str, float], None]  # (attempt, cause, delay), like StepContext.retry
T = TypeVar("T")

_APPLY_MODES: dict[str, Any] = {
    "reboot": machine_pb2.ApplyConfigurationRequest.REBOOT,
    "auto": machine_pb2.ApplyConfigurationRequest.AUTO,
    "no_reboot": machine_pb2.ApplyConfigurationRequest.NO_REBOOT,
    "staged": machine_pb2.ApplyConfigurationRequest.STAGED,
    "try": machine_pb2.ApplyConfigurationRequest.TRY,
}
_TRANSIENT = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.ABORTED}
_TLS_WORDS = ("handshake", "certificate", "ssl", "tls", "x509")
# Short reconnect backoff: a rebooting node should be picked up within a second or two. Not
# "grpc.min_reconnect_backoff_ms": gRPC core takes it as the minimum *connect timeout* (default
# 20 s), so 200 there failed every connection whose TCP + TLS (through the relay) + SETTINGS took
# longer than 0.2 s: a distant node, or a busy machine (grpc/grpc doc/connection-backoff.md,
# MIN_CONNECT_TIMEOUT; measured with grpcio 1.85: 0.22 s to UNAVAILABLE "connection attempt timed
# out before receiving SETTINGS frame").
_CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
]


def _resolve(address: str, connections: Connections | None) -> tuple[str, int, str | None]:
    default = Endpoint(host=address, port=TALOS_API_PORT)
    endpoint = connections.endpoint("talos", address, default=default) if connections else default
    return endpoint.host, endpoint.port, endpoint.extra.get("server_name")


def classify_rpc_error(err: grpc.RpcError, where: str, transport: tuple[str, bool] | None = None) -> OperationError:
    """Turn a gRPC failure into a tierzero error with a hint; transient ones as TalosUnavailable.
    `transport` is the relay's (reason, is_tls) for a connection it could not make."""
    code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    details = (err.details() if hasattr(err, "details") else str(err)) or ""
    if code == grpc.StatusCode.UNAVAILABLE and transport is not None:
        details = transport[0]
    text = f"Talos API {where}: {code.name}: {details}"
    is_tls = transport[1] if transport is not None else any(w in details.lower() for w in _TLS_WORDS)
    if code == grpc.StatusCode.UNAVAILABLE and is_tls:
        return TalosTLSError(
            f"TLS with the Talos API {where} failed: {details}",
            hint="the talosconfig (CA, client certificate) does not match this node's OS CA, "
            "or the node is still in maintenance mode / rebooting into its configuration",
        )
    if code in _TRANSIENT:
        return TalosUnavailable(text, hint="the node may be rebooting or not yet reachable on port 50000")
    if code == grpc.StatusCode.UNAUTHENTICATED:  # never retried: the certificate will not become trusted by waiting
        return AuthenticationFailed(text, hint="the client certificate is not trusted by the node: regenerate the talosconfig from the cluster secrets",
                                    status=code.name)
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return OperationError(text, hint="the talosconfig certificate lacks the os:admin role")
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return OperationError(text, hint="the node rejected the machine configuration; validate it with `talosctl validate`")
    if code == grpc.StatusCode.UNIMPLEMENTED:
        return TalosNotImplemented(text, hint="the node is in maintenance mode (only apply-config works) or runs an older Talos")
    return OperationError(text)


def _check_metadata(messages: Iterable[Any], where: str) -> list[Any]:
    out = list(messages)
    for m in out:
        if m.HasField("metadata") and m.metadata.error:
            raise OperationError(f"Talos API {where}: {m.metadata.error}")
    return out


def extract_kubeconfig(data: bytes) -> bytes:
    """The Kubeconfig RPC streams a gzipped tarball holding a file named `kubeconfig`."""
    if not data.startswith(b"\x1f\x8b"):
        return data  # already plain YAML
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data)), mode="r:") as tar:
        for member in tar.getmembers():
            if member.name.lstrip("./") == "kubeconfig" and member.isfile():
                f = tar.extractfile(member)
                if f is not None:
                    return f.read()
    raise OperationError("the Kubeconfig response held no `kubeconfig` file")


class TalosClient:
    """One node's Talos API. Use as `async with`, or call `close()`."""

    def __init__(
        self,
        address: str,
        *,
        host: str,
        port: int,
        credentials: TalosCredentials | None,
        node: str | None = None,
        server_name: str | None = None,
        call_timeout: float = 30.0,
    ) -> None:
        self.address = address
        self.node = node
        self.call_timeout = call_timeout
        self._host, self._port, self._server_name = host, port, server_name
        self._credentials = credentials
        self._channel: grpc.aio.Channel | None = None
        self._relay: TLSRelay | None = None
        self._stub: machine_pb2_grpc.MachineServiceStub | None = None

    @classmethod
    def maintenance(cls, address: str, *, connections: Connections | None = None, call_timeout: float = 30.0) -> "TalosClient":
        host, port, server_name = _resolve(address, connections)
        return cls(address, host=host, port=port, credentials=None, server_name=server_name, call_timeout=call_timeout)

    @classmethod
    def authenticated(
        cls,
        address: str,
        talosconfig: str | bytes | TalosCredentials,
        *,
        connections: Connections | None = None,
        node: str | None = None,
        context: str | None = None,
        call_timeout: float = 30.0,
    ) -> "TalosClient":
        """`address` is the endpoint dialled; `node` (if another machine) goes in the `nodes` header."""
        creds = talosconfig if isinstance(talosconfig, TalosCredentials) else parse_talosconfig(talosconfig, context)
        host, port, server_name = _resolve(address, connections)
        target = node if node and node != address else None
        return cls(address, host=host, port=port, credentials=creds, node=target, server_name=server_name, call_timeout=call_timeout)

    @property
    def is_maintenance(self) -> bool:
        return self._credentials is None

    async def __aenter__(self) -> "TalosClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel, self._stub = None, None
        if self._relay is not None:
            await self._relay.close()
            self._relay = None

    async def _get_stub(self) -> machine_pb2_grpc.MachineServiceStub:
        if self._stub is not None:
            return self._stub
        creds = self._credentials
        try:
            ctx = client_context(creds.ca_pem, creds.crt_pem, creds.key_pem) if creds else client_context()
        except (ssl.SSLError, ValueError) as err:
            raise OperationError(
                f"cannot use the talosconfig certificates for {self.address}: {err}",
                hint="check that ca, crt and key in the talosconfig are matching base64 PEM",
            ) from None
        self._relay = TLSRelay(self._host, self._port, ctx, server_name=self._server_name)
        local_port = await self._relay.start()
        self._channel = grpc.aio.insecure_channel(f"127.0.0.1:{local_port}", options=_CHANNEL_OPTIONS)
        self._stub = machine_pb2_grpc.MachineServiceStub(self._channel)
        return self._stub

    def _sent(self, method: str) -> None:
        mode = " (maintenance, no client certificate)" if self.is_maintenance else ""
        calls.sent("talos", self.node or self.address, f"{method} via {self.address}:{self._port}{mode}" if self.node else f"{method}{mode}")

    def _metadata(self) -> tuple[tuple[str, str], ...]:
        return (("nodes", self.node),) if self.node else ()

    @property
    def _where(self) -> str:
        return f"on {self.node} via {self.address}" if self.node else f"on {self.address}"

    def _error(self, err: grpc.RpcError, where: str) -> OperationError:
        transport = self._relay.last_failure() if self._relay is not None else None
        error = classify_rpc_error(err, where, transport)
        if self.is_maintenance and isinstance(error, TalosTLSError):
            error.hint = "the node is no longer in maintenance mode (already configured?): use its talosconfig"
        return error

    async def _unary(self, method: str, request: Any, timeout: float | None = None) -> list[Any]:
        stub = await self._get_stub()
        self._sent(method)
        try:
            response = await getattr(stub, method)(request, timeout=timeout or self.call_timeout, metadata=self._metadata())
        except grpc.RpcError as err:
            raise self._error(err, f"{method} {self._where}") from None
        return _check_metadata(response.messages, f"{method} {self._where}")

    # -- calls ------------------------------------------------------------------------------

    async def version(self, timeout: float | None = None) -> VersionInfo:
        (m, *_) = await self._unary("Version", empty_pb2.Empty(), timeout) or [machine_pb2.Version()]
        return VersionInfo(
            tag=m.version.tag, sha=m.version.sha, os=m.version.os, arch=m.version.arch,
            platform=m.platform.name, platform_mode=m.platform.mode, hostname=m.metadata.hostname,
        )

    async def apply_configuration(self, config: bytes | str, mode: ApplyMode = "auto", *, dry_run: bool = False) -> ApplyResult:
        data = config.encode() if isinstance(config, str) else config
        request = machine_pb2.ApplyConfigurationRequest(data=data, mode=_APPLY_MODES[mode], dry_run=dry_run)
        messages = await self._unary("ApplyConfiguration", request)
        m = messages[0] if messages else machine_pb2.ApplyConfiguration()
        chosen = machine_pb2.ApplyConfigurationRequest.Mode.Name(m.mode).lower()
        return ApplyResult(mode=chosen, details=m.mode_details, warnings=tuple(m.warnings))

    async def bootstrap(self, *, recover_etcd: bool = False) -> bool:
        """Bootstrap etcd on this control plane. True if done now, False if it already was.
        `recover_etcd`: from the snapshot `etcd_recover` uploaded (Talos' disaster recovery)."""
        try:
            await self._unary("Bootstrap", machine_pb2.BootstrapRequest(recover_etcd=recover_etcd))
        except TalosUnavailable:
            raise
        except OperationError as err:
            text = err.message.lower()
            if "already_exists" in text or "not empty" in text or "already bootstrapped" in text:
                return False
            raise
        return True

    async def etcd_members(self) -> list[EtcdMember]:
        messages = await self._unary("EtcdMemberList", machine_pb2.EtcdMemberListRequest())
        return [
            EtcdMember(id=e.id, hostname=e.hostname, peer_urls=tuple(e.peer_urls), client_urls=tuple(e.client_urls), is_learner=e.is_learner)
            for m in messages
            for e in m.members
        ]

    async def services(self) -> list[ServiceStatus]:
        messages = await self._unary("ServiceList", empty_pb2.Empty())
        return [
            ServiceStatus(id=s.id, state=s.state, healthy=s.health.healthy, health_unknown=s.health.unknown, message=s.health.last_message)
            for m in messages
            for s in m.services
        ]

    async def kubeconfig(self) -> bytes:
        stub = await self._get_stub()
        chunks: list[bytes] = []
        where = f"Kubeconfig {self._where}"
        self._sent("Kubeconfig")
        try:
            async for chunk in stub.Kubeconfig(empty_pb2.Empty(), timeout=self.call_timeout, metadata=self._metadata()):
                _check_metadata([chunk], where)
                chunks.append(chunk.bytes)
        except grpc.RpcError as err:
            raise self._error(err, where) from None
        return extract_kubeconfig(b"".join(chunks))

    async def upgrade(self, image: str, *, force: bool = False) -> str:
        """Ask the node to install the installer `image` (e.g.
        factory.talos.dev/nocloud-installer/<schematic>:v1.13.9) and reboot into it; returns the
        node's acknowledgement. `force` skips Talos' etcd health check on a control plane. The node
        answers before it reboots: wait for it (`wait_ready`) and compare `version().tag`.
        Source: siderolabs/talos v1.12.11 api/machine/machine.proto UpgradeRequest (image,
        preserve, stage, force, reboot_mode) and v1alpha1_server.go Upgrade."""
        messages = await self._unary("Upgrade", machine_pb2.UpgradeRequest(image=image, force=force))
        return messages[0].ack if messages else ""

    async def etcd_snapshot(self, *, limit: int = 8 * 1024**3) -> bytes:
        """A snapshot of etcd from this control plane (EtcdSnapshot streams common.Data chunks;
        what `talosctl etcd snapshot` saves). OperationError past `limit` bytes (etcd's own quota
        is 2 GiB by default, 8 GiB at most). Source: siderolabs/talos v1.12.11 api/machine/
        machine.proto EtcdSnapshot, v1alpha1_server.go EtcdSnapshot."""
        stub = await self._get_stub()
        where = f"EtcdSnapshot {self._where}"
        self._sent("EtcdSnapshot")
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in stub.EtcdSnapshot(machine_pb2.EtcdSnapshotRequest(), timeout=max(self.call_timeout, 300.0),
                                                 metadata=self._metadata()):
                _check_metadata([chunk], where)
                size += len(chunk.bytes)
                if size > limit:
                    raise OperationError(f"Talos API {where}: the snapshot is larger than {limit} bytes")
                chunks.append(chunk.bytes)
        except grpc.RpcError as err:
            raise self._error(err, where) from None
        return b"".join(chunks)

    async def etcd_recover(self, snapshot: bytes, chunk: int = 1024 * 1024) -> None:
        """Upload an etcd snapshot for a later `bootstrap(recover_etcd=True)` (EtcdRecover,
        a stream of common.Data; Talos keeps it as /var/lib/etcd.snapshot)."""
        from tierzero.adapters.talos_proto import common_pb2

        stub = await self._get_stub()
        where = f"EtcdRecover {self._where}"
        self._sent("EtcdRecover")

        async def parts() -> Any:
            for i in range(0, len(snapshot), chunk):
                yield common_pb2.Data(bytes=snapshot[i:i + chunk])

        try:
            reply = await stub.EtcdRecover(parts(), timeout=max(self.call_timeout, 300.0), metadata=self._metadata())
        except grpc.RpcError as err:
            raise self._error(err, where) from None
        _check_metadata(reply.messages, where)

    async def reboot(self, *, powercycle: bool = False) -> None:
        mode = machine_pb2.RebootRequest.POWERCYCLE if powercycle else machine_pb2.RebootRequest.DEFAULT
        await self._unary("Reboot", machine_pb2.RebootRequest(mode=mode))

    async def reset(self, graceful: bool = True, *, reboot: bool = False) -> None:
        """Wipe the node (leaving etcd first if graceful); it comes back in maintenance mode if `reboot`."""
        await self._unary("Reset", machine_pb2.ResetRequest(graceful=graceful, reboot=reboot))

    # -- waiting ----------------------------------------------------------------------------

    async def retrying(
        self,
        call: Callable[[], Awaitable[T]],
        *,
        timeout: float,
        what: str = "Talos API",
        on_retry: RetryHook | None = None,
        initial_delay: float = 0.25,
        max_delay: float = 5.0,
    ) -> T:
        """Run `call` until it succeeds, retrying `TalosUnavailable` with backoff and jitter for at
        most `timeout` seconds. Permanent errors propagate at once."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        attempt = 0
        while True:
            try:
                return await call()
            except TalosUnavailable as err:
                attempt += 1
                remaining = end - loop.time()
                if remaining <= 0:
                    raise type(err)(
                        f"{what} {self._where} not ready after {timeout:g}s ({attempt} attempts): {err.message}",
                        hint=err.hint,
                    ) from None
                delay = min(max_delay, initial_delay * 2 ** (attempt - 1))
                delay = min(remaining, delay * random.uniform(0.5, 1.0))
                if on_retry is not None:
                    on_retry(attempt, err.message, delay)
                await asyncio.sleep(delay)

    async def wait_ready(self, timeout: float = 600.0, *, on_retry: RetryHook | None = None) -> VersionInfo:
        """Wait (at most `timeout` seconds) until the API answers `Version`, e.g. after a reboot."""
        per_call = min(self.call_timeout, 10.0)
        return await self.retrying(lambda: self.version(timeout=per_call), timeout=timeout, what="Talos API", on_retry=on_retry)

    async def unhealthy_services(self, required: Iterable[str] = ("apid", "kubelet", "etcd")) -> list[str]:
        """Required services that are missing or not running healthy, as "id: state" strings."""
        by_id = {s.id: s for s in await self.services()}
        out = []
        for name in required:
            status = by_id.get(name)
            if status is None or not status.ok:
                out.append(f"{name}: {status.state if status else 'missing'}")
        return out

    async def wait_services(
        self,
        required: Iterable[str] = ("apid", "kubelet", "etcd"),
        *,
        timeout: float = 600.0,
        on_retry: RetryHook | None = None,
    ) -> None:
        names = tuple(required)

        async def check() -> None:
            bad = await self.unhealthy_services(names)
            if bad:
                raise TalosUnavailable(f"services not healthy: {', '.join(bad)}")

        await self.retrying(check, timeout=timeout, what="Talos services", on_retry=on_retry)
