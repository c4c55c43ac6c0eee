"""etcd snapshots of a cluster, taken and restored over the Talos API (`tierzero backup`,
`tierzero restore`); not deploy steps, operations a user (or a timer) runs on a deployed platform.

Backup: EtcdSnapshot from the first control plane that gives one (what `talosctl etcd snapshot`
does), encrypted at once with sops to the workspace's age recipient (binary input: the snapshot
is never on disk in plaintext), written 0600 as .tierzero/backups/<cluster>/etcd-<UTC>.snapshot.sops;
then the oldest beyond the spec's `etcd_backups.keep` are deleted. With `etcd_backups.bucket` the
same encrypted bytes go to an S3-compatible bucket instead (tierzero.adapters.snapshot_bucket): one
PutObject, so an interrupted upload leaves no object; retention there deletes tierzero's own
snapshots only, never the one just written, never anything else in the bucket. A bucket on OCI
Object Storage is counted against the dated Always Free allowance (freetier/limits
`object_storage_gb`, the whole bucket's bytes) before anything is uploaded.

Restore: Talos' disaster recovery (docs.siderolabs.com/talos/v1.11/build-and-extend-talos/
cluster-operations-and-maintenance/disaster-recovery, "Recovering from the backup"): every
control plane answers with the cluster's credentials (a node back in maintenance mode gets its
machine config) and none runs etcd (a fresh or reset control plane: its etcd waits in
"Preparing" for a bootstrap); the snapshot goes up with EtcdRecover to the first control plane,
then Bootstrap{recover_etcd: true} there; etcd is then waited for at full membership. A control
plane whose etcd still runs is refused: a recovery beside a live etcd would split the cluster.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tierzero.adapters.retry import RetryExhausted, Transient, retry_async
from tierzero.adapters.ssh import retry_policy
from tierzero.adapters.talos_errors import TalosUnavailable
from tierzero.engine.step import StepContext
from tierzero.errors import InputError, OperationError, RefusedError
from tierzero.phases.platform import PlatformHooks, configure_node, node_ip, talos_client
from tierzero.workspace.layout import write_private

GIB = 1024**3

if TYPE_CHECKING:
    from tierzero.adapters.snapshot_bucket import SnapshotBucket
    from tierzero.spec.clusters import Cluster

SUFFIX = ".snapshot.sops"


def backup_dir(ctx: StepContext, cluster: Cluster) -> Path:
    return ctx.workspace.root / "backups" / cluster.name


def backups(directory: Path) -> list[Path]:
    """The snapshots in `directory`, oldest first (their names sort by time)."""
    return sorted(p for p in directory.glob(f"etcd-*{SUFFIX}") if p.is_file()) if directory.is_dir() else []


def beyond_retention(files: list[Path], keep: int) -> list[Path]:
    """Of `files` (oldest first), those to delete so that the newest `keep` remain."""
    return files[: max(0, len(files) - keep)]


@dataclass(frozen=True)
class Backup:
    file: Path | str  # the workspace file, or the object's s3:// URL
    node: str  # the control plane that gave the snapshot
    size: int  # plaintext bytes
    sha256: str  # of the plaintext snapshot
    removed: tuple[Path | str, ...]  # older snapshots deleted by the retention (files or s3:// URLs)
    bucket_bytes: int | None = None  # an OCI bucket: its bytes after the upload, counted against the allowance

    def as_dict(self) -> dict[str, Any]:
        out = {"file": str(self.file), "node": self.node, "bytes": self.size, "sha256": self.sha256,
               "removed": [str(p) for p in self.removed]}
        if self.bucket_bytes is not None:
            out["bucket_bytes"] = self.bucket_bytes
        return out


def snapshot_bucket(ctx: StepContext, cluster: Cluster) -> SnapshotBucket:
    """The cluster's snapshots in `etcd_backups.bucket`, the credentials resolved from the secret store."""
    from tierzero.adapters.s3_objects import S3Objects
    from tierzero.adapters.snapshot_bucket import SnapshotBucket

    spec = cluster.etcd_backups.bucket
    assert spec is not None
    where = f"clusters[{cluster.name}].etcd_backups.bucket"
    objects = S3Objects(endpoint=spec.endpoint, region=spec.region, bucket=spec.bucket,
                        access_key=ctx.secrets.resolve(spec.access_key), secret_key=ctx.secrets.resolve(spec.secret_key),
                        label=f"etcd backups of {cluster.name}",
                        credentials=f"{where}.access_key ({spec.access_key}) and {where}.secret_key ({spec.secret_key})")
    return SnapshotBucket(objects, cluster.etcd_backups.prefix(cluster.name))


def _to_bucket(ctx: StepContext, cluster: Cluster, name: str, sealed: bytes) -> tuple[str, tuple[Path | str, ...], int | None]:
    """Upload `sealed` as `name`, then apply the retention: (its URL, URLs deleted, the OCI bucket's bytes or None)."""
    from tierzero.freetier.limits import limits_on

    spec = cluster.etcd_backups.bucket
    assert spec is not None
    bucket = snapshot_bucket(ctx, cluster)
    used: int | None = None
    if spec.is_oci:
        allowance = limits_on()["object_storage_gb"]
        used = bucket.bucket_bytes() + len(sealed)
        if used > allowance * GIB:
            raise RefusedError(f"{bucket.url()}: the bucket would hold {used / GIB:.2f} GB with this snapshot, over the "
                               f"{allowance:g} GB of Object Storage Always Free allows",
                               hint="lower etcd_backups.keep, delete old objects (a lifecycle rule deletes the scheduled ones), "
                                    "or use another bucket; nothing was uploaded")
    written = bucket.upload(name, sealed)
    ours = [s for s in bucket.snapshots() if s.kind == "tierzero" and s.key != written.key]
    removed = ours[: max(0, len(ours) - (cluster.etcd_backups.keep - 1))]
    for old in removed:
        bucket.delete(old)
    if used is not None:
        used -= sum(old.size for old in removed)
    return bucket.url(written.key), tuple(bucket.url(old.key) for old in removed), used


async def take(ctx: StepContext, cluster: Cluster, *, now: datetime | None = None) -> Backup:
    """Snapshot the cluster's etcd into the workspace; OperationError when no control plane gives one."""
    from tierzero.adapters import sops

    refused: list[str] = []
    for node in cluster.control_planes:
        client = talos_client(ctx, cluster, node_ip(node))
        try:
            ctx.wait(f"an etcd snapshot from {node.name}")
            data = await client.etcd_snapshot()
        except OperationError as err:
            refused.append(f"{node.name}: {err.message}")
            continue
        finally:
            await client.close()
        if not data:
            refused.append(f"{node.name}: an empty snapshot")
            continue
        recipient = ctx.workspace.age_recipient()
        sealed = await asyncio.to_thread(sops.encrypt, data, recipient, fmt="binary")
        stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
        name = f"etcd-{stamp}{SUFFIX}"
        digest = hashlib.sha256(data).hexdigest()
        if cluster.etcd_backups.bucket is not None:
            ctx.wait(f"the encrypted snapshot uploaded to {cluster.etcd_backups.bucket.bucket}")
            url, gone, used = await asyncio.to_thread(_to_bucket, ctx, cluster, name, sealed)
            return Backup(url, node.name, len(data), digest, gone, used)
        directory = backup_dir(ctx, cluster)
        target = directory / name
        write_private(target, sealed)
        removed = beyond_retention(backups(directory), cluster.etcd_backups.keep)
        for old in removed:
            old.unlink(missing_ok=True)
        return Backup(target, node.name, len(data), digest, tuple(removed))
    raise OperationError(f"no control plane of {cluster.name} gave an etcd snapshot:\n  " + "\n  ".join(refused),
                         hint="etcd must run on at least one control plane: check `talosctl etcd status`")


def _from_bucket(ctx: StepContext, cluster: Cluster, name: str | None) -> tuple[str, bytes]:
    """(URL, plaintext) of the snapshot `name` in the bucket, else the newest there (tierzero's or talos-backup's)."""
    from tierzero.adapters import sops
    from tierzero.adapters.sops import AgeKey

    bucket = snapshot_bucket(ctx, cluster)
    if name is None:
        found = bucket.snapshots()
        if not found:
            raise InputError(f"no etcd snapshot of {cluster.name} in {bucket.url()}",
                             hint="run `tierzero backup` first (or wait for the scheduled one), or pass --snapshot FILE")
        chosen = found[-1]
    else:
        chosen = bucket.find(name)
    sealed = bucket.read(chosen)
    if chosen.kind == "talos-backup":
        return bucket.url(chosen.key), _age_decrypt(ctx, sealed, bucket.url(chosen.key))
    return bucket.url(chosen.key), sops.decrypt(sealed, AgeKey(key_file=ctx.workspace.age_key), fmt="binary")


def _age_decrypt(ctx: StepContext, sealed: bytes, where: str) -> bytes:
    """A talos-backup snapshot: plain age (X25519) to the workspace's recipient, which the rendered CronJob names."""
    import pyrage

    from tierzero.workspace.keys import load_age_identity

    try:
        return bytes(pyrage.decrypt(sealed, [pyrage.x25519.Identity.from_str(load_age_identity(ctx.workspace))]))
    except pyrage.DecryptError as exc:
        raise InputError(f"{where}: cannot decrypt it with {ctx.workspace.age_key}: {exc}",
                         hint="it was encrypted to another age key (AGE_X25519_PUBLIC_KEY of the CronJob that wrote it)") from None


def read(ctx: StepContext, cluster: Cluster, file: Path | str | None) -> tuple[Path | str, bytes]:
    """(where, plaintext snapshot): `file` if it is a file here; else, with etcd_backups.bucket, the snapshot of
    that name in the bucket (default: the newest there); else the newest backup in the workspace."""
    from tierzero.adapters import sops
    from tierzero.adapters.sops import AgeKey

    if cluster.etcd_backups.bucket is not None and not (file is not None and Path(file).is_file()):
        return _from_bucket(ctx, cluster, None if file is None else str(file))
    if file is None:
        found = backups(backup_dir(ctx, cluster))
        if not found:
            raise InputError(f"no etcd backup of {cluster.name} in {backup_dir(ctx, cluster)}", hint="run `tierzero backup` first, or pass --snapshot FILE")
        file = found[-1]
    file = Path(file)
    if not file.is_file():
        raise InputError(f"{file}: no such snapshot file", hint=f"the backups are in {backup_dir(ctx, cluster)}")
    if file.name.endswith(".age"):  # a talos-backup snapshot copied out of its bucket
        return file, _age_decrypt(ctx, file.read_bytes(), str(file))
    return file, sops.decrypt(file.read_bytes(), AgeKey(key_file=ctx.workspace.age_key), fmt="binary")


async def _etcd_state(ctx: StepContext, cluster: Cluster, address: str) -> tuple[str, str]:
    client = talos_client(ctx, cluster, address)
    try:
        etcd = next((s for s in await client.services() if s.id == "etcd"), None)
    finally:
        await client.close()
    return (etcd.state, etcd.message) if etcd else ("missing", "")


async def restore(ctx: StepContext, cluster: Cluster, snapshot: bytes, hooks: PlatformHooks | None = None) -> dict[str, Any]:
    """Recover the cluster's etcd from `snapshot` on its first control plane (module docstring)."""
    h = hooks or PlatformHooks()
    policy = retry_policy(ctx.connections, "wait")
    await asyncio.gather(*(configure_node(ctx, h, cluster, node, policy) for node in cluster.control_planes))
    states = await asyncio.gather(*(_etcd_state(ctx, cluster, node_ip(n)) for n in cluster.control_planes))
    running = [n.name for n, (state, _) in zip(cluster.control_planes, states) if state == "Running"]
    if running:
        raise RefusedError(f"etcd runs on {', '.join(running)}: a recovery goes onto fresh control planes only",
                           hint="reset the control planes first (talosctl reset --graceful=false --reboot), then run restore again")
    first = cluster.control_planes[0]
    client = talos_client(ctx, cluster, node_ip(first))
    try:
        ctx.wait(f"the snapshot uploaded to {first.name}")
        await client.etcd_recover(snapshot)
        await client.bootstrap(recover_etcd=True)
    finally:
        await client.close()
    want = len(cluster.control_planes)

    async def members() -> int:
        state, message = await _etcd_state(ctx, cluster, node_ip(first))
        if state == "Failed":
            raise OperationError(f"etcd on {first.name} did not start from the snapshot: {message}",
                                 hint="check the snapshot file (a copy of a data directory needs its hash check skipped); "
                                      "reset the control planes and run restore again")
        listing = talos_client(ctx, cluster, node_ip(first))
        try:
            found = await listing.etcd_members()
        except TalosUnavailable as err:
            raise Transient(err.message) from None
        except OperationError as err:
            raise Transient(err.message) from None
        finally:
            await listing.close()
        if len(found) < want:
            raise Transient(f"{len(found)}/{want} etcd members")
        return len(found)

    ctx.wait(f"etcd of {cluster.name}: {want} members")
    try:
        count = await retry_async(members, policy=policy, on_retry=ctx.retry, what=f"etcd of {cluster.name}")
    except RetryExhausted as exc:
        raise OperationError(f"etcd of {cluster.name} not back after the recovery: {exc.message}",
                             hint="check `talosctl etcd members` and the etcd logs of the control planes") from exc
    return {"node": first.name, "members": count, "bytes": len(snapshot)}


__all__ = ["Backup", "SUFFIX", "backup_dir", "backups", "beyond_retention", "read", "restore", "snapshot_bucket", "take"]
