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
import yaml

from tierzero.cli.session import Session
from tierzero.phases import etcd_backup
from tierzero.phases.platform import node_ip, talos_client
from tierzero.sandbox import kubernetes, talos
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
        kube = session.sandbox.context[kubernetes.SERVERS]["main"].state  # no Talos API access enabled: Talos serves no such CRD
        assert kube.read("apiextensions.k8s.io/v1", "CustomResourceDefinition", "serviceaccounts.talos.dev") is None
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


def _with_bucket(spec: Path, endpoint: str, bucket: str, keep: int = 2, schedule: str | None = None) -> None:
    data = yaml.safe_load(spec.read_text())
    data["clusters"][0]["etcd_backups"] = {"keep": keep, **({"schedule": schedule} if schedule else {}), "bucket": {
        "bucket": bucket, "endpoint": endpoint, "region": "eu-frankfurt-1", "prefix": "backups/main",
        "access_key": "env:TZ_BACKUP_KEY_ID", "secret_key": "env:TZ_BACKUP_SECRET"}}
    spec.write_text(yaml.safe_dump(data, sort_keys=False))


def test_backup_into_a_bucket_then_restore_from_it_on_reset_control_planes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same disaster as above, the snapshots kept in an S3 bucket: retention there, recovery from the newest object.
    The spec also schedules talos-backup: the control planes enable Talos API access, so Talos serves the
    `talos.dev` ServiceAccount CRD and Flux applies the CronJob and the Talos ServiceAccount from the tree."""
    from s3_server import ACCESS_KEY, SECRET_KEY, s3_server

    monkeypatch.setenv("TZ_BACKUP_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("TZ_BACKUP_SECRET", SECRET_KEY)
    with s3_server() as s3:
        spec = starter_project(tmp_path)
        _with_bucket(spec, s3.endpoint, s3.bucket, schedule="0 3 * * *")
        session = Session(spec, "sandbox")
        with session as runner:
            asyncio.run(runner.run())
            kube = session.sandbox.context[kubernetes.SERVERS]["main"].state
            assert kube.read("apiextensions.k8s.io/v1", "CustomResourceDefinition", "serviceaccounts.talos.dev") is not None
            job = kube.read("batch/v1", "CronJob", "talos-backup", "talos-backup")
            assert job is not None and job["spec"]["schedule"] == "0 3 * * *"
            assert kube.read("talos.dev/v1alpha1", "ServiceAccount", "talos-backup-talos", "talos-backup")["spec"] == {"roles": ["os:etcd:backup"]}
            registry = session.sandbox.context[talos.REGISTRY]
            for key, value in KEYS.items():
                registry.clusters["main"].etcd_put(key, value)
            ctx = runner.context_from_state("backup")
            cluster = session.spec.cluster("main")
            start = datetime(2026, 12, 1, 2, 0, tzinfo=timezone.utc)
            taken = [asyncio.run(etcd_backup.take(ctx, cluster, now=start + timedelta(hours=i))) for i in range(3)]
            assert all(str(t.file).startswith(f"s3://{s3.bucket}/backups/main/etcd-") for t in taken)
            assert taken[2].removed == (taken[0].file,) and taken[2].bucket_bytes is None
            assert s3.keys() == [str(t.file).removeprefix(f"s3://{s3.bucket}/") for t in taken[1:]]
            assert not any(b"s3cr3t-value" in s3.read(k) or SNAPSHOT_MAGIC in s3.read(k) for k in s3.keys())
            assert not etcd_backup.backups(etcd_backup.backup_dir(ctx, cluster))  # nothing kept in the workspace
            registry.clusters["main"].etcd_put("/registry/configmaps/default/later", "after the backup")

            async def reset_all() -> None:
                for node in cluster.control_planes:
                    client = talos_client(ctx, cluster, node_ip(node))
                    try:
                        await client.reset(graceful=False, reboot=True)
                    finally:
                        await client.close()

            asyncio.run(reset_all())
            source, data = etcd_backup.read(ctx, cluster, None)
            assert source == taken[2].file and data.startswith(SNAPSHOT_MAGIC)
            result = asyncio.run(etcd_backup.restore(ctx, cluster, data))
            assert result["members"] == 3 and registry.clusters["main"].etcd == KEYS


def test_the_cli_names_the_credential_fields_on_a_refused_key_and_prints_no_secret(tmp_path: Path) -> None:
    """restore reads the bucket before anything else: a key the bucket refuses ends it with exit code 1."""
    import os

    from s3_server import enforced_credentials, s3_server

    with s3_server() as s3, enforced_credentials(s3) as (key_id, _):
        spec = starter_project(tmp_path)
        _with_bucket(spec, s3.endpoint, s3.bucket)
        wrong = "never-printed-wrong-secret-0123456789abcdef"
        env = {**os.environ, "TZ_BACKUP_KEY_ID": key_id, "TZ_BACKUP_SECRET": wrong}
        done = subprocess.run([sys.executable, "-m", "tierzero", "restore", "-f", str(spec), "--target", "sandbox", "--yes"],
                              capture_output=True, text=True, timeout=180, env=env)
    out = done.stdout + done.stderr
    assert done.returncode == 1, out[-2000:]
    assert "SignatureDoesNotMatch" in out and "etcd_backups.bucket.secret_key (env:TZ_BACKUP_SECRET)" in out
    assert wrong not in out and "Traceback" not in out
