"""The Talos machine API a stand-in node serves (`_Servicer`, one per node, its gRPC backend): the
RPCs tierzero calls, their maintenance-mode gate and fault injection, with Talos' answers. The
node itself (`tierzero.sandbox.talos.server.TalosNodeServer`) is passed in; this module imports
nothing back from it."""

from __future__ import annotations

import gzip
import io
import tarfile
from typing import Any, Callable

import grpc
import yaml

from tierzero.adapters.talos_proto import common_pb2, machine_pb2, machine_pb2_grpc
from tierzero.sandbox.talos.tls import ConfigError, parse_machine_config

Node = Any  # a TalosNodeServer
Mode = machine_pb2.ApplyConfigurationRequest  # Mode.REBOOT etc.; names via Mode.Mode.Name


class _Abort(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


# -- RPCs --------------------------------------------------------------------------------------

def _kubeconfig_tarball(content: bytes) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("kubeconfig")
        info.size, info.mode = len(content), 0o600
        tar.addfile(info, io.BytesIO(content))
    return gzip.compress(raw.getvalue())


def _default_kubeconfig(cluster: str, address: str) -> bytes:
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": f"admin@{cluster}",
        "clusters": [{"name": cluster, "cluster": {"server": f"https://{address}:6443"}}],
        "contexts": [{"name": f"admin@{cluster}", "context": {"cluster": cluster, "user": f"admin@{cluster}"}}],
        "users": [{"name": f"admin@{cluster}", "user": {}}],
    }).encode()


def _service(name: str, state: str, healthy: bool) -> machine_pb2.ServiceInfo:
    health = machine_pb2.ServiceHealth(healthy=healthy, unknown=not healthy and state != "Running")
    return machine_pb2.ServiceInfo(id=name, state=state, health=health)


Handler = Callable[["_Servicer", Any, Any], Any]  # (servicer, node, request) -> response


def _rpc(maintenance_ok: bool = False) -> Callable[[Handler], Callable[..., Any]]:
    """Wrap a handler `(self, node, request) -> response` as a grpc.aio method: resolve the
    target node (fault injection, `nodes` header, maintenance gate) and turn `_Abort` into
    a gRPC status."""

    def wrap(handler: Handler) -> Callable[..., Any]:
        async def method(self: "_Servicer", request: Any, context: grpc.aio.ServicerContext) -> Any:
            try:
                return handler(self, self._target(handler.__name__, context, maintenance_ok), request)
            except _Abort as err:
                await context.abort(err.code, err.message)

        method.__name__ = handler.__name__
        return method

    return wrap


class _Servicer(machine_pb2_grpc.MachineServiceServicer):
    def __init__(self, node: Node) -> None:
        self.node = node

    def _target(self, method: str, context: grpc.aio.ServicerContext, maintenance_ok: bool) -> Node:
        self.node.calls.append(method)
        if self.node.down_calls > 0:
            self.node.down_calls -= 1
            raise _Abort(grpc.StatusCode.UNAVAILABLE, "connection refused (injected)")
        found = dict(context.invocation_metadata() or ()).get("nodes")
        wanted = found.decode() if isinstance(found, bytes) else found
        node = self.node
        if wanted and wanted not in (node.address, node.hostname) and wanted not in node.held_addresses():
            other = self.node.registry.node(wanted)
            if other is None or other._front is None:
                raise _Abort(grpc.StatusCode.UNAVAILABLE, f"error dialing backend {wanted!r}")
            node = other
        if node.maintenance and not maintenance_ok:
            raise _Abort(grpc.StatusCode.UNIMPLEMENTED, f"API {method} is not implemented in maintenance mode")
        return node

    @staticmethod
    def _meta(node: Node) -> common_pb2.Metadata:
        return common_pb2.Metadata(hostname=node.hostname)

    @_rpc(maintenance_ok=True)
    def Version(self, node: Node, request: Any) -> Any:
        arch = str((node.image or {}).get("arch") or "amd64")
        info = machine_pb2.VersionInfo(tag=node.version_tag, sha="sandbox", os="linux", arch=arch)
        name, mode = node.platform
        platform = machine_pb2.PlatformInfo(name=name, mode=mode)
        return machine_pb2.VersionResponse(messages=[machine_pb2.Version(metadata=self._meta(node), version=info, platform=platform)])

    @_rpc(maintenance_ok=True)
    def ApplyConfiguration(self, node: Node, request: Any) -> Any:
        if node.reject_apply:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, node.reject_apply)
        try:
            config = parse_machine_config(request.data)
        except ConfigError as err:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, str(err)) from None
        reboot = node.maintenance or request.mode == Mode.REBOOT
        mode = Mode.REBOOT if reboot else (Mode.NO_REBOOT if request.mode in (Mode.AUTO, Mode.TRY) else request.mode)
        if not request.dry_run:
            node.configure(config)
            node.registry.changed()
            if reboot:
                node.reboot_soon()
        details = "Dry run: no changes applied" if request.dry_run else f"Applied configuration ({Mode.Mode.Name(mode)})"
        reply = machine_pb2.ApplyConfiguration(metadata=self._meta(node), mode=mode, mode_details=details)
        return machine_pb2.ApplyConfigurationResponse(messages=[reply])

    @_rpc()
    def Bootstrap(self, node: Node, request: Any) -> Any:
        assert node.config is not None and node.cluster is not None
        if not node.config.control_plane:
            raise _Abort(grpc.StatusCode.FAILED_PRECONDITION, "bootstrap is only possible on control plane nodes")
        if node.cluster.bootstrapped:
            raise _Abort(grpc.StatusCode.ALREADY_EXISTS, "etcd data directory is not empty")
        node.cluster.bootstrapped = True
        for member in node.cluster.nodes.values():
            member.in_etcd = bool(member.config and member.config.control_plane)
        node.registry.changed()
        return machine_pb2.BootstrapResponse(messages=[machine_pb2.Bootstrap(metadata=self._meta(node))])

    @_rpc()
    def EtcdMemberList(self, node: Node, request: Any) -> Any:
        assert node.config is not None and node.cluster is not None
        if not node.config.control_plane or not node.in_etcd:
            raise _Abort(grpc.StatusCode.UNAVAILABLE, "etcd is not running on this node")
        members = node.cluster.etcd_members()
        return machine_pb2.EtcdMemberListResponse(messages=[machine_pb2.EtcdMembers(metadata=self._meta(node), members=members)])

    @_rpc()
    def ServiceList(self, node: Node, request: Any) -> Any:
        assert node.config is not None
        services = [_service("apid", "Running", True), _service("containerd", "Running", True), _service("kubelet", "Running", True)]
        if node.config.control_plane:
            services.append(_service("etcd", "Running", True) if node.in_etcd else _service("etcd", "Preparing", False))
            services.append(_service("trustd", "Running", True))
        return machine_pb2.ServiceListResponse(messages=[machine_pb2.ServiceList(metadata=self._meta(node), services=services)])

    @_rpc()
    def Reboot(self, node: Node, request: Any) -> Any:
        node.reboot_soon()
        return machine_pb2.RebootResponse(messages=[machine_pb2.Reboot(metadata=self._meta(node))])

    @_rpc()
    def Reset(self, node: Node, request: Any) -> Any:
        meta = self._meta(node)
        node.wipe()
        node.registry.changed()
        node.reboot_soon(halt=not request.reboot)
        return machine_pb2.ResetResponse(messages=[machine_pb2.Reset(metadata=meta)])

    async def Kubeconfig(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            node = self._target("Kubeconfig", context, maintenance_ok=False)
            assert node.config is not None
            if not node.config.control_plane:
                raise _Abort(grpc.StatusCode.FAILED_PRECONDITION, "kubeconfig is only available on control plane nodes")
        except _Abort as err:
            await context.abort(err.code, err.message)
            return
        content = (node.kubeconfig_provider or _default_kubeconfig)(node.config.cluster_name, node.address)
        blob = _kubeconfig_tarball(content.encode() if isinstance(content, str) else content)
        for i in range(0, len(blob), 512):
            yield common_pb2.Data(metadata=self._meta(node), bytes=blob[i : i + 512])
