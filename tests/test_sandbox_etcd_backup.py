"""etcd backup and restore against the sandbox's 3-control-plane starter: snapshots over the Talos
API, encrypted in the workspace with retention; after every control plane is reset (etcd gone),
Talos' recovery path brings etcd back with the keys it had at the backup, and only those; the CLI
takes a backup and refuses to recover beside a live etcd."""

from __future__ import annotations

import asyncio
import json
import stat
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tierzero.cli.session import Session
from tierzero.phases import etcd_backup
from tierzero.phases.platform import node_ip, talos_client
from tierzero.sandbox import talos
from tierzero.sandbox.talos.etcd import SNAPSHOT_MAGIC

from sandbox_runs import starter_project

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

KEYS = {"/registry/configmaps/default/app": "v1", "/registry/secrets/default/token": "s3cr3t-value"}


def test_backup_then_restore_on_reset_control_planes_brings_etcd_back_with_its_keys(tmp_path: Path) -> None:
    spec = starter_project(tmp_path)
    spec.write_text(spec.read_text().replace("    control_planes:\n", "    etcd_backups: {keep: 2}\n    control_planes:\n", 1))
    session = Session(spec, "sandbox")
    with session as runner:
        asyncio.run(runner.run())
        registry = session.sandbox.context[talos.REGISTRY]
        for key, value in KEYS.items():  # what the API server wrote to etcd (the Kubernetes stand-in keeps its own objects)
            registry.clusters["main"].etcd_put(key, value)
        ctx = runner.context_from_state("backup")
        cluster = session.spec.cluster("main")
        start = datetime(2026, 12, 1, 2, 0, tzinfo=timezone.utc)
        taken = [asyncio.run(etcd_backup.take(ctx, cluster, now=start + timedelta(hours=i))) for i in range(3)]
        files = etcd_backup.backups(etcd_backup.backup_dir(ctx, cluster))
        assert files == [taken[1].file, taken[2].file] and taken[2].removed == (taken[0].file,)  # keep: 2
        for file in files:
            raw = file.read_bytes()
            assert stat.S_IMODE(file.stat().st_mode) == 0o600
            assert SNAPSHOT_MAGIC not in raw and b"s3cr3t-value" not in raw and json.loads(raw)["sops"]["age"]
        registry.clusters["main"].etcd_put("/registry/configmaps/default/later", "after the backup")

        async def reset_all() -> None:  # the disaster: talosctl reset --graceful=false --reboot on every control plane
            for node in cluster.control_planes:
                client = talos_client(ctx, cluster, node_ip(node))
                try:
                    await client.reset(graceful=False, reboot=True)
                finally:
                    await client.close()

        asyncio.run(reset_all())
        assert "main" not in registry.clusters  # the last member's data went with it

        with pytest.raises(Exception, match="no etcd backup|no such snapshot"):
            etcd_backup.read(ctx, cluster, tmp_path / "missing.snapshot.sops")
        source, data = etcd_backup.read(ctx, cluster, None)
        assert source == taken[2].file and data.startswith(SNAPSHOT_MAGIC)
        result = asyncio.run(etcd_backup.restore(ctx, cluster, data))
        assert result == {"node": "cp-1", "members": 3, "bytes": len(data)}
        assert registry.clusters["main"].etcd == KEYS
        assert registry.clusters["main"].bootstrapped

        with pytest.raises(Exception, match="etcd runs on cp-1, cp-2, cp-3"):
            asyncio.run(etcd_backup.restore(ctx, cluster, data))  # never beside a live etcd


def test_the_cli_backs_up_and_refuses_to_restore_beside_a_live_etcd(tmp_path: Path) -> None:
    spec = starter_project(tmp_path)
    tierzero = [sys.executable, "-m", "tierzero"]
    subprocess.run([*tierzero, "deploy", "-f", str(spec), "--target", "sandbox", "--json"], check=True, capture_output=True, timeout=300)
    done = subprocess.run([*tierzero, "backup", "-f", str(spec), "--json"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    (backup,) = json.loads(done.stdout)["backups"]
    assert backup["node"] == "cp-1" and Path(backup["file"]).is_file() and backup["removed"] == []
    refused = subprocess.run([*tierzero, "restore", "-f", str(spec), "--yes"], capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0 and "etcd runs on cp-1, cp-2, cp-3" in refused.stderr + refused.stdout
    assert "Traceback" not in refused.stderr
