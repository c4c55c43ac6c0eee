"""The Talos machine API a stand-in node serves (`_Servicer`, one per node, its gRPC backend): the
RPCs tierzero calls, their maintenance-mode gate and fault injection, with Talos' answers. The
node itself (`tierzero.sandbox.talos.server.TalosNodeServer`) is passed in; this module imports
nothing back from it.

Maintenance mode follows the node's Talos version; the caller is never a SideroLink peer, so it
holds the Reader role there:
- Talos <= 1.12 runs a dedicated maintenance server. ApplyConfiguration (modes auto, reboot,
  try) is served to anyone; the admin-only Version, Reset (also Upgrade, MetaWrite, MetaDelete)
  answer UNIMPLEMENTED "API is not implemented in maintenance mode"; every other method is the
  grpc-go stub's UNIMPLEMENTED "method <Name> not implemented". Source: siderolabs/talos
  v1.12.11 (same in v1.9.0, v1.10.0, v1.11.0) internal/app/maintenance/server.go
  (ApplyConfiguration, Version, assertAdminRole, embedded UnimplementedMachineServiceServer),
  internal/app/machined/pkg/controllers/runtime/maintenance_service.go (ReadOnlyWithAdminOnSiderolink),
  pkg/grpc/middleware/authz/injector.go (non-SideroLink peer: Reader).
- Talos >= 1.13 serves maintenance from apid with the ordinary role rules: Reader may call
  Version, ApplyConfiguration is allowed to Reader while the node has no config, admin-only
  methods answer PERMISSION_DENIED "not authorized". Source: siderolabs/talos v1.13.9
  internal/app/machined/pkg/system/services/machined.go (rules), pkg/grpc/middleware/authz/
  authorizer.go (ErrNotAuthorized), commit b7d70cf62 "unify maintenance and regular APIs".
"""

from __future__ import annotations

import gzip
import io
import re
import tarfile
import uuid
from typing import Any, Callable

import grpc
import yaml

from tierzero.adapters.talos_proto import common_pb2, machine_pb2, machine_pb2_grpc
from tierzero.sandbox.talos import etcd
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


def unified_maintenance(version_tag: str) -> bool:
    """Whether this Talos version serves maintenance mode from apid (>= v1.13, see the module
    docstring) rather than from the dedicated maintenance server (<= v1.12)."""
    found = re.match(r"v?(\d+)\.(\d+)", version_tag or "")
    return found is not None and (int(found.group(1)), int(found.group(2))) >= (1, 13)


# Who may call a method in maintenance mode. "apply": ApplyConfiguration (its own checks).
# "admin-only": <= 1.12 answers "API is not implemented in maintenance mode" (assertAdminRole),
# >= 1.13 "not authorized". "reader": >= 1.13 allows the Reader role; <= 1.12 has no such method
# in its maintenance server. "absent": neither serves it to a Reader (grpc stub / not authorized).
MaintenanceAccess = str


def _rpc(maintenance: MaintenanceAccess = "absent") -> Callable[[Handler], Callable[..., Any]]:
    """Wrap a handler `(self, node, request) -> response` as a grpc.aio method: resolve the
    target node (fault injection, `nodes` header, maintenance gate) and turn `_Abort` into
    a gRPC status."""

    def wrap(handler: Handler) -> Callable[..., Any]:
        async def method(self: "_Servicer", request: Any, context: grpc.aio.ServicerContext) -> Any:
            try:
                return handler(self, self._target(handler.__name__, context, maintenance), request)
            except _Abort as err:
                await context.abort(err.code, err.message)

        method.__name__ = handler.__name__
        return method

    return wrap


def _maintenance_gate(node: Node, method: str, access: MaintenanceAccess) -> None:
    """Refuse `method` on a node in maintenance mode as its Talos version does (module docstring)."""
    if access == "apply":
        return
    if unified_maintenance(node.version_tag):
        if access == "reader" and method == "Version":
            return
        if access == "reader":  # allowed to Reader, but what these answer before any config is not modelled
            raise _Abort(grpc.StatusCode.UNKNOWN, f"sandbox: {method} on a node in maintenance mode is not modelled")
        raise _Abort(grpc.StatusCode.PERMISSION_DENIED, "not authorized")
    if access == "admin-only" or method == "Version":
        raise _Abort(grpc.StatusCode.UNIMPLEMENTED, "API is not implemented in maintenance mode")
    raise _Abort(grpc.StatusCode.UNIMPLEMENTED, f"method {method} not implemented")


def _apply_outcome(node: Node, request: Any) -> tuple[Any, str]:
    """(mode, mode_details) of an ApplyConfiguration reply.
    - <= 1.12 in maintenance: no mode set (0, REBOOT) and no details; a dry run says "Dry run
      summary:\nNode is running in maintenance mode and does not have a config yet."
      (v1.12.11 internal/app/maintenance/server.go ApplyConfiguration). The machine then boots
      with the config, which the stand-in shows as a reboot.
    - otherwise (v1.13.9 v1alpha1_server.go ApplyConfiguration): in maintenance REBOOT becomes
      NO_REBOOT and AUTO picks NO_REBOOT; on a configured node the stand-in's AUTO applies
      without a reboot (it models no change that needs one). Details "Applied configuration with a reboot" / "... without a
      reboot" / "Staged configuration to be applied after the next reboot"."""
    if node.maintenance and not unified_maintenance(node.version_tag):
        if request.dry_run:
            return Mode.REBOOT, "Dry run summary:\nNode is running in maintenance mode and does not have a config yet."
        return Mode.REBOOT, ""
    mode = request.mode
    if node.maintenance and mode == Mode.REBOOT:
        mode = Mode.NO_REBOOT
    if mode == Mode.AUTO:
        mode = Mode.NO_REBOOT
    details = {Mode.REBOOT: "Applied configuration with a reboot", Mode.NO_REBOOT: "Applied configuration without a reboot",
               Mode.TRY: "Applied configuration without a reboot",
               Mode.STAGED: "Staged configuration to be applied after the next reboot"}[mode]
    if request.dry_run:
        details = f"Dry run summary:\n{details} (skipped in dry-run)."
    return mode, details


def node_reboots(mode: Any, node: Node) -> bool:
    """The stand-in reboots a node that leaves maintenance (it comes back with mutual TLS) or
    that applied with mode REBOOT."""
    return node.maintenance or mode == Mode.REBOOT


class _Servicer(machine_pb2_grpc.MachineServiceServicer):
    def __init__(self, node: Node) -> None:
        self.node = node

    def _target(self, method: str, context: grpc.aio.ServicerContext, maintenance: MaintenanceAccess) -> Node:
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
        if node.maintenance:
            _maintenance_gate(node, method, maintenance)
        return node

    @staticmethod
    def _meta(node: Node) -> common_pb2.Metadata:
        return common_pb2.Metadata(hostname=node.hostname)

    @_rpc("reader")
    def Version(self, node: Node, request: Any) -> Any:
        arch = str((node.image or {}).get("arch") or "amd64")
        info = machine_pb2.VersionInfo(tag=node.version_tag, sha="sandbox", os="linux", arch=arch)
        name, mode = node.platform
        platform = machine_pb2.PlatformInfo(name=name, mode=mode)
        return machine_pb2.VersionResponse(messages=[machine_pb2.Version(metadata=self._meta(node), version=info, platform=platform)])

    @_rpc("apply")
    def ApplyConfiguration(self, node: Node, request: Any) -> Any:
        if node.maintenance and not unified_maintenance(node.version_tag) and request.mode not in (Mode.AUTO, Mode.REBOOT, Mode.TRY):
            # v1.12.11 internal/app/maintenance/server.go ApplyConfiguration: the mode's name, lower case, "_" -> "-"
            name = Mode.Mode.Name(request.mode).lower().replace("_", "-")
            raise _Abort(grpc.StatusCode.UNIMPLEMENTED, f"apply configuration --mode='{name}' is not supported in maintenance mode")
        if node.reject_apply:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, node.reject_apply)
        try:
            config = parse_machine_config(request.data)
        except ConfigError as err:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, str(err)) from None
        mode, details = _apply_outcome(node, request)
        if not request.dry_run:
            reboot = node_reboots(mode, node)
            node.configure(config)
            node.registry.changed()
            if reboot:
                node.reboot_soon()
            else:
                node.registry.node_state(node, True)
        reply = machine_pb2.ApplyConfiguration(metadata=self._meta(node), mode=mode, mode_details=details)
        return machine_pb2.ApplyConfigurationResponse(messages=[reply])

    @_rpc()
    def Bootstrap(self, node: Node, request: Any) -> Any:
        """Refusals as siderolabs/talos v1.12.11 v1alpha1_server.go Bootstrap: a worker, then a
        non-empty etcd data directory. With recover_etcd, etcd starts from the snapshot EtcdRecover
        uploaded (`tierzero.sandbox.talos.etcd`). ("bootstrap is not available yet" and "time is not in
        sync yet" are not modelled: a stand-in node is ready and in sync once configured.)"""
        assert node.config is not None and node.cluster is not None
        if not node.config.control_plane:
            raise _Abort(grpc.StatusCode.FAILED_PRECONDITION, "bootstrap can only be performed on a control plane node")
        if node.cluster.bootstrapped:
            raise _Abort(grpc.StatusCode.ALREADY_EXISTS, "etcd data directory is not empty")
        if request.recover_etcd and not etcd.bootstrap_from_recovery(node, request.recover_skip_hash_check):
            return machine_pb2.BootstrapResponse(messages=[machine_pb2.Bootstrap(metadata=self._meta(node))])  # etcd failed after the answer
        node.cluster.bootstrapped = True
        for member in node.cluster.nodes.values():
            member.in_etcd = bool(member.config and member.config.control_plane)
        node.registry.changed()
        return machine_pb2.BootstrapResponse(messages=[machine_pb2.Bootstrap(metadata=self._meta(node))])

    @_rpc("reader")
    def EtcdMemberList(self, node: Node, request: Any) -> Any:
        """A worker: UNIMPLEMENTED "member list is only available on control plane nodes"
        (siderolabs/talos v1.12.11 v1alpha1_server.go EtcdMemberList, checkControlplane). A
        control plane whose etcd does not run: the etcd client's dial fails; the stand-in
        answers UNAVAILABLE (the code etcd's client gives is not modelled exactly)."""
        assert node.config is not None and node.cluster is not None
        if not node.config.control_plane:
            raise _Abort(grpc.StatusCode.UNIMPLEMENTED, "member list is only available on control plane nodes")
        if not node.in_etcd:
            raise _Abort(grpc.StatusCode.UNAVAILABLE, "etcd is not running on this node")
        members = node.cluster.etcd_members()
        return machine_pb2.EtcdMemberListResponse(messages=[machine_pb2.EtcdMembers(metadata=self._meta(node), members=members)])

    @_rpc("reader")
    def ServiceList(self, node: Node, request: Any) -> Any:
        assert node.config is not None
        services = [_service("apid", "Running", True), _service("containerd", "Running", True), _service("kubelet", "Running", True)]
        if node.config.control_plane and node.etcd_failure:  # the etcd service failed to start; it says why
            failed = _service("etcd", "Failed", False)
            failed.health.last_message = node.etcd_failure
            services.append(failed)
        elif node.config.control_plane:
            services.append(_service("etcd", "Running", True) if node.in_etcd else _service("etcd", "Preparing", False))
            services.append(_service("trustd", "Running", True))
        return machine_pb2.ServiceListResponse(messages=[machine_pb2.ServiceList(metadata=self._meta(node), services=services)])

    @_rpc()
    def Reboot(self, node: Node, request: Any) -> Any:
        node.reboot_soon()
        return machine_pb2.RebootResponse(messages=[machine_pb2.Reboot(metadata=self._meta(node))])

    @_rpc("admin-only")
    def Upgrade(self, node: Node, request: Any) -> Any:
        """As siderolabs/talos v1.12.11 v1alpha1_server.go Upgrade: the installer image is pulled
        and validated first ("error validating installer image ..."); then, on a control plane
        unless `force` or `preserve`, etcd must stay quorate: a two-member etcd is refused, and
        every member must be started and healthy (internal/pkg/etcd/etcd.go ValidateForUpgrade);
        errors are plain Go errors, so gRPC code UNKNOWN. The reply ("Upgrade request received")
        goes out before the node reboots into the installer's version (sequencer Upgrade: drain,
        stop services, install, reboot), keeping its etcd membership and its machine config.
        (`stage`, the upgrade mutex and the reboot mode are not modelled.)"""
        assert node.config is not None and node.cluster is not None
        try:
            installed = node.registry.pull_installer(request.image)
        except LookupError as err:
            raise _Abort(grpc.StatusCode.UNKNOWN, f'error validating installer image "{request.image}": {err}') from None
        if node.config.control_plane and not request.force and not request.preserve:
            problem = node.cluster.etcd_upgrade_problem()
            if problem:
                raise _Abort(grpc.StatusCode.UNKNOWN, f"error validating etcd for upgrade: {problem}")
        node.upgrade_soon(installed)
        reply = machine_pb2.Upgrade(metadata=self._meta(node), ack="Upgrade request received", actor_id=str(uuid.uuid4()))
        return machine_pb2.UpgradeResponse(messages=[reply])

    @_rpc("admin-only")
    def Reset(self, node: Node, request: Any) -> Any:
        meta = self._meta(node)
        node.wipe()
        node.registry.changed()
        node.reboot_soon(halt=not request.reboot)
        return machine_pb2.ResetResponse(messages=[machine_pb2.Reset(metadata=meta)])

    async def EtcdSnapshot(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            node = self._target("EtcdSnapshot", context, "absent")
            chunks = etcd.snapshot_chunks(node)
        except (_Abort, etcd.Abort) as err:
            await context.abort(err.code, err.message)
            return
        for chunk in chunks:
            chunk.metadata.CopyFrom(self._meta(node))
            yield chunk

    async def EtcdRecover(self, request_iterator: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            node = self._target("EtcdRecover", context, "absent")
            data = b"".join([chunk.bytes async for chunk in request_iterator])
            return etcd.receive_recovery(node, data)
        except (_Abort, etcd.Abort) as err:
            await context.abort(err.code, err.message)

    async def Kubeconfig(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            node = self._target("Kubeconfig", context, "absent")
            assert node.config is not None
            if not node.config.control_plane:  # v1.12.11 v1alpha1_server.go Kubeconfig, checkControlplane
                raise _Abort(grpc.StatusCode.UNIMPLEMENTED, "kubeconfig is only available on control plane nodes")
        except _Abort as err:
            await context.abort(err.code, err.message)
            return
        content = (node.kubeconfig_provider or _default_kubeconfig)(node.config.cluster_name, node.address)
        blob = _kubeconfig_tarball(content.encode() if isinstance(content, str) else content)
        for i in range(0, len(blob), 512):
            yield common_pb2.Data(metadata=self._meta(node), bytes=blob[i : i + 512])
