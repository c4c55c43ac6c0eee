"""The etcd a stand-in cluster keeps (its keys, by `TalosSandboxCluster.etcd`), its snapshots, and
the Talos API's EtcdSnapshot, EtcdRecover and Bootstrap{recover_etcd} over them.

A snapshot is not a bbolt database: it is `SNAPSHOT_MAGIC`, a JSON line {"revision", "keys"}, and
the sha256 of what precedes it, as `etcdctl snapshot save` (etcd's client Snapshot, which Talos'
EtcdSnapshot streams) appends a sha256 to the database file. Rules, each with its source:
- EtcdSnapshot: control planes only, UNIMPLEMENTED "etcd snapshot is only available on control
  plane nodes"; a node whose etcd does not run fails to make its local etcd client (UNKNOWN
  "failed to create etcd client: ..."); the snapshot is streamed as common.Data chunks.
  Source: siderolabs/talos v1.12.11 v1alpha1_server.go EtcdSnapshot, checkControlplane.
- EtcdRecover: control planes only ("etcd recover is only available on control plane nodes");
  the upload is kept as /var/lib/etcd.snapshot until a Bootstrap recovers from it, an empty
  upload included. Source: same file, EtcdRecover; constants.go EtcdRecoverySnapshotPath.
- Bootstrap{recover_etcd}: the usual refusals (`rpc.Bootstrap`: a worker; a non-empty etcd data
  directory, ALREADY_EXISTS), then the RPC answers and etcd starts from the uploaded snapshot;
  a missing or broken snapshot, or one without its hash unless recover_skip_hash_check, makes the
  etcd service fail (the RPC itself has already answered): "error verifying snapshot: ..." /
  "error recovering from the snapshot: snapshot missing hash but --skip-hash-check=false".
  Source: siderolabs/talos v1.12.11 internal/app/machined/pkg/system/services/etcd.go
  recoverFromSnapshot; etcd-io/etcd v3.5 etcdutl/snapshot/v3_snapshot.go saveDB (hash check).
Not modelled: the Kubernetes objects the API server keeps in etcd (the Kubernetes stand-in keeps
its own), revisions beyond a counter, compaction.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import grpc

from tierzero.adapters.talos_proto import common_pb2, machine_pb2

SNAPSHOT_MAGIC = b"TIERZERO-SANDBOX-ETCD-SNAPSHOT\n"
RECOVERY_PATH = "/var/lib/etcd.snapshot"


class SnapshotError(Exception):
    pass


def snapshot(keys: dict[str, str], revision: int) -> bytes:
    """A snapshot of `keys` at `revision`, with its sha256 appended."""
    body = SNAPSHOT_MAGIC + json.dumps({"revision": revision, "keys": dict(sorted(keys.items()))}).encode() + b"\n"
    return body + hashlib.sha256(body).digest()


def restore(data: bytes | None, *, skip_hash_check: bool = False) -> tuple[dict[str, str], int]:
    """(keys, revision) of a snapshot; SnapshotError with etcd's words when it cannot be used."""
    if data is None:
        raise SnapshotError(f"error verifying snapshot: stat {RECOVERY_PATH}: no such file or directory")
    hashed = len(data) > 32 and hashlib.sha256(data[:-32]).digest() == data[-32:]
    body = data[:-32] if hashed else data
    if not body.startswith(SNAPSHOT_MAGIC):
        raise SnapshotError("error verifying snapshot: invalid database")
    if not hashed and not skip_hash_check:
        raise SnapshotError("error recovering from the snapshot: snapshot missing hash but --skip-hash-check=false")
    try:
        doc = json.loads(body[len(SNAPSHOT_MAGIC):])
        return {str(k): str(v) for k, v in doc["keys"].items()}, int(doc["revision"])
    except (ValueError, KeyError, TypeError, AttributeError):
        raise SnapshotError("error verifying snapshot: invalid database") from None


class Abort(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def _control_plane(node: Any, api: str) -> None:
    if node.config is None or not node.config.control_plane:
        raise Abort(grpc.StatusCode.UNIMPLEMENTED, f"{api} is only available on control plane nodes")


def snapshot_chunks(node: Any, chunk: int = 4096) -> list[common_pb2.Data]:
    """What EtcdSnapshot streams from `node`."""
    _control_plane(node, "etcd snapshot")
    cluster = node.cluster
    if not node.in_etcd or cluster is None or not cluster.bootstrapped:
        raise Abort(grpc.StatusCode.UNKNOWN, "failed to create etcd client: context deadline exceeded")
    data = snapshot(cluster.etcd, cluster.etcd_revision)
    return [common_pb2.Data(bytes=data[i:i + chunk]) for i in range(0, len(data), chunk)]


def receive_recovery(node: Any, data: bytes) -> machine_pb2.EtcdRecoverResponse:
    """EtcdRecover on `node`: keep the upload for the next Bootstrap{recover_etcd}."""
    _control_plane(node, "etcd recover")
    node.recovery_snapshot = data
    node.registry.changed()
    return machine_pb2.EtcdRecoverResponse(messages=[machine_pb2.EtcdRecover(metadata=common_pb2.Metadata(hostname=node.hostname))])


def bootstrap_from_recovery(node: Any, skip_hash_check: bool) -> bool:
    """After Bootstrap's own checks: etcd starts from the uploaded snapshot. True when it runs;
    False when it failed (the node's etcd service says why, `node.etcd_failure`)."""
    try:
        keys, revision = restore(node.recovery_snapshot, skip_hash_check=skip_hash_check)
    except SnapshotError as err:
        node.etcd_failure = str(err)
        node.registry.changed()
        return False
    cluster = node.cluster
    cluster.etcd, cluster.etcd_revision = keys, revision
    node.recovery_snapshot, node.etcd_failure = None, None
    return True


__all__ = ["Abort", "SNAPSHOT_MAGIC", "SnapshotError", "bootstrap_from_recovery", "receive_recovery", "restore", "snapshot",
           "snapshot_chunks"]
