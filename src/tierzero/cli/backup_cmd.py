"""`tierzero backup` and `tierzero restore`: etcd snapshots of each cluster over the Talos API,
kept encrypted in the workspace or in the cluster's `etcd_backups.bucket` (see tierzero.phases.etcd_backup)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from tierzero.cli.deploy_cmd import FOLLOW_TARGET_OPTION, JSON_OPTION, SPEC_OPTION, YES_OPTION, _confirm, _followed_target

CLUSTER_OPTION = typer.Option(None, "--cluster", "-c", help="The cluster (default: every cluster for backup; the only one for restore).")


def register(app: typer.Typer) -> None:
    app.command("backup")(backup)
    app.command("restore")(restore)


def _clusters(spec: Any, name: str | None) -> list[Any]:
    from tierzero.errors import InputError

    if name is None:
        return list(spec.clusters)
    found = [c for c in spec.clusters if c.name == name]
    if not found:
        raise InputError(f"--cluster {name}: the spec has no such cluster", hint=f"one of: {', '.join(c.name for c in spec.clusters)}")
    return found


def backup(file: Path = SPEC_OPTION, target: str = FOLLOW_TARGET_OPTION, cluster: str = CLUSTER_OPTION, json_out: bool = JSON_OPTION) -> None:
    """Take an etcd snapshot of each cluster over the Talos API; keep it encrypted (age) in .tierzero/backups/ or the etcd_backups.bucket."""
    import asyncio

    from tierzero.cli import output
    from tierzero.cli.session import Session
    from tierzero.phases import etcd_backup

    target = _followed_target(file, target)
    session = Session(file, target)
    with session as runner:
        ctx = runner.context_from_state("backup")
        taken = [asyncio.run(etcd_backup.take(ctx, c)) for c in _clusters(session.spec, cluster)]
    if json_out:
        output.print_json({"backups": [b.as_dict() for b in taken]})
        return
    con = output.console()
    for b in taken:
        con.print(f"{b.file} ({b.size} bytes of etcd from {b.node}, encrypted; sha256 {b.sha256[:16]}…)", markup=False)
        for old in b.removed:
            con.print(f"  removed {str(old).rsplit('/', 1)[-1]} (beyond etcd_backups.keep)", markup=False)
        if b.bucket_bytes is not None:
            from tierzero.freetier.limits import limits_on

            con.print(f"  the bucket holds {b.bucket_bytes / 1024**3:.3f} GB of the {limits_on()['object_storage_gb']:g} GB "
                      "Object Storage Always Free allows", markup=False)


def restore(file: Path = SPEC_OPTION, target: str = FOLLOW_TARGET_OPTION, cluster: str = CLUSTER_OPTION,
            snapshot: str = typer.Option(None, "--snapshot", help=(
                "The encrypted snapshot: a file, or a name in the etcd_backups.bucket (default: the cluster's newest backup).")),
            yes: bool = YES_OPTION, json_out: bool = JSON_OPTION) -> None:
    """Recover a cluster's etcd from a backup onto fresh control planes (Talos' disaster recovery)."""
    import asyncio

    from tierzero.cli import output
    from tierzero.cli.session import Session
    from tierzero.errors import InputError
    from tierzero.phases import etcd_backup

    target = _followed_target(file, target)
    session = Session(file, target)
    with session as runner:
        chosen = _clusters(session.spec, cluster)
        if len(chosen) != 1:
            raise InputError("restore works on one cluster at a time", hint="pass --cluster NAME")
        ctx = runner.context_from_state("restore")
        source, data = etcd_backup.read(ctx, chosen[0], snapshot)
        _confirm(f"recover etcd of {chosen[0].name} from {source}", target=target, yes=yes, json_out=json_out)
        result = asyncio.run(etcd_backup.restore(ctx, chosen[0], data))
    if json_out:
        output.print_json({"restored": {"cluster": chosen[0].name, "snapshot": str(source), **result}})
        return
    output.console().print(f"etcd of {chosen[0].name} recovered from {source} on {result['node']}: "
                           f"{result['members']} members", markup=False)
