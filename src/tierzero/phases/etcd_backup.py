"""etcd snapshots of a cluster, taken and restored over the Talos API (`tierzero backup`,
`tierzero restore`); not deploy steps, operations a user (or a timer) runs on a deployed platform.

Backup: EtcdSnapshot from the first control plane that gives one (what `talosctl etcd snapshot`
does), encrypted at once with sops to the workspace's age recipient (binary input: the snapshot
is never on disk in plaintext), written 0600 as .tierzero/backups/<cluster>/etcd-<UTC>.snapshot.sops;
then the oldest beyond the spec's `etcd_backups.keep` are deleted.

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

if TYPE_CHECKING:
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
    file: Path
    node: str  # the control plane that gave the snapshot
    size: int  # plaintext bytes
    sha256: str  # of the plaintext snapshot
    removed: tuple[Path, ...]  # older snapshots deleted by the retention

    def as_dict(self) -> dict[str, Any]:
        return {"file": str(self.file), "node": self.node, "bytes": self.size, "sha256": self.sha256,
                "removed": [str(p) for p in self.removed]}


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
        directory = backup_dir(ctx, cluster)
        target = directory / f"etcd-{stamp}{SUFFIX}"
        write_private(target, sealed)
        removed = beyond_retention(backups(directory), cluster.etcd_backups.keep)
        for old in removed:
            old.unlink(missing_ok=True)
        return Backup(target, node.name, len(data), hashlib.sha256(data).hexdigest(), tuple(removed))
    raise OperationError(f"no control plane of {cluster.name} gave an etcd snapshot:\n  " + "\n  ".join(refused),
                         hint="etcd must run on at least one control plane: check `talosctl etcd status`")


def read(ctx: StepContext, cluster: Cluster, file: Path | None) -> tuple[Path, bytes]:
    """(file, plaintext snapshot): `file`, else the newest backup of the cluster."""
    from tierzero.adapters import sops
    from tierzero.adapters.sops import AgeKey

    if file is None:
        found = backups(backup_dir(ctx, cluster))
        if not found:
            raise InputError(f"no etcd backup of {cluster.name} in {backup_dir(ctx, cluster)}", hint="run `tierzero backup` first, or pass --snapshot FILE")
        file = found[-1]
    if not file.is_file():
        raise InputError(f"{file}: no such snapshot file", hint=f"the backups are in {backup_dir(ctx, cluster)}")
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


__all__ = ["Backup", "SUFFIX", "backup_dir", "backups", "beyond_retention", "read", "restore", "take"]
