"""etcd snapshots in an S3-compatible bucket (etcd_backups.bucket) against a real S3 API (moto's
server on loopback): uploads are encrypted before they leave, retention deletes tierzero's own
snapshots only and never the one just written, restore picks the newest or a named one (tierzero's
or a talos-backup one), wrong credentials fail with the field to fix and no secret, an upload cut
short leaves nothing, and an OCI bucket is held to the Always Free Object Storage allowance."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

import pyrage
import pytest
import yaml
from s3_server import ACCESS_KEY, SECRET_KEY, enforced_credentials, s3_server
from spec_builder import blueprint_data

from tierzero.adapters import sops
from tierzero.adapters.snapshot_bucket import SCHEDULED_DIR
from tierzero.errors import InputError, OperationError, RefusedError
from tierzero.phases import etcd_backup
from tierzero.spec import load_spec
from tierzero.workspace import Workspace
from tierzero.workspace.keys import init_workspace
from tierzero.workspace.secrets import WorkspaceSecrets

SNAPSHOT = b"etcd-snapshot-bytes " * 500 + b"s3cr3t-value"


@pytest.fixture(scope="module")
def server():
    with s3_server() as s3:
        yield s3


def _project(root: Path, server, *, keep: int = 2, endpoint: str | None = None, prefix: str = "", environ: dict[str, str] | None = None):
    spec = blueprint_data()
    bucket = {"bucket": server.bucket, "endpoint": endpoint or server.endpoint, "region": "eu-frankfurt-1",
              "access_key": "env:BACKUP_KEY_ID", "secret_key": "env:BACKUP_SECRET"}
    if prefix:
        bucket["prefix"] = prefix
    spec["clusters"][0]["etcd_backups"] = {"keep": keep, "bucket": bucket}
    root.mkdir(parents=True)
    (root / "tierzero.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    ws = Workspace.beside(root / "tierzero.yaml")
    init_workspace(ws)
    loaded = load_spec(root / "tierzero.yaml")
    env = environ if environ is not None else {"BACKUP_KEY_ID": ACCESS_KEY, "BACKUP_SECRET": SECRET_KEY}
    ctx = SimpleNamespace(workspace=ws, secrets=WorkspaceSecrets(ws, loaded.base_dir, environ=env), wait=lambda *_: None)
    return ctx, loaded.platform.clusters[0]


def _seal(ctx, data: bytes) -> bytes:
    return sops.encrypt(data, ctx.workspace.age_recipient(), fmt="binary")


def test_upload_list_retention_and_restore_of_the_newest_or_a_named_one(server, tmp_path):
    ctx, cluster = _project(tmp_path / "p", server, keep=2, prefix="retention/main")
    foreign = ["retention/main/notes.txt", "retention/main/etcd-manual-copy.db", "retention/main/old/etcd-20200101T000000Z.snapshot.sops",
               "retention/other/etcd-20200101T000000Z.snapshot.sops"]
    for key in foreign:  # objects that are not this cluster's tierzero snapshots: never touched
        server.client.put_object(Bucket=server.bucket, Key=key, Body=b"keep me")
    urls = []
    for i in range(3):
        data = SNAPSHOT + str(i).encode()
        url, removed, used = etcd_backup._to_bucket(ctx, cluster, f"etcd-2026120{i + 1}T020000Z.snapshot.sops", _seal(ctx, data))
        urls.append(url)
        assert used is None  # not an OCI bucket: no allowance to count against
        if i == 2:
            assert removed == (urls[0],)
    keys = server.keys()
    ours = [k for k in keys if k.startswith("retention/main/etcd-2026")]
    assert ours == ["retention/main/etcd-20261202T020000Z.snapshot.sops", "retention/main/etcd-20261203T020000Z.snapshot.sops"]
    assert all(k in keys for k in foreign)
    for key in ours:
        stored = server.read(key)
        assert b"s3cr3t-value" not in stored and b"etcd-snapshot-bytes" not in stored and json.loads(stored)["sops"]["age"]

    where, data = etcd_backup.read(ctx, cluster, None)
    assert where == urls[2] and data == SNAPSHOT + b"2"
    where, data = etcd_backup.read(ctx, cluster, "etcd-20261202T020000Z.snapshot.sops")
    assert where == urls[1] and data == SNAPSHOT + b"1"
    with pytest.raises(InputError, match="no such snapshot in s3://") as missing:
        etcd_backup.read(ctx, cluster, "etcd-20261201T020000Z.snapshot.sops")  # deleted by the retention
    assert "etcd-20261203T020000Z.snapshot.sops" in (missing.value.hint or "")


def test_the_one_just_written_survives_even_when_older_ones_look_newer(server, tmp_path):
    """keep: 1 and a snapshot named later than the new one (a clock that ran ahead): the new one stays."""
    ctx, cluster = _project(tmp_path / "p", server, keep=1, prefix="ahead/main")
    etcd_backup._to_bucket(ctx, cluster, "etcd-20991231T000000Z.snapshot.sops", _seal(ctx, b"from the future"))
    url, removed, _ = etcd_backup._to_bucket(ctx, cluster, "etcd-20261201T000000Z.snapshot.sops", _seal(ctx, SNAPSHOT))
    assert [k for k in server.keys() if k.startswith("ahead/")] == ["ahead/main/etcd-20261201T000000Z.snapshot.sops"]
    assert removed == (url.replace("20261201T000000Z", "20991231T000000Z"),)


def test_restore_reads_a_scheduled_talos_backup_snapshot_with_the_workspace_key(server, tmp_path):
    """What the rendered CronJob uploads: `<prefix>/scheduled/<cluster>-<RFC 3339>.snap.age`, plain age to the workspace recipient."""
    ctx, cluster = _project(tmp_path / "p", server, prefix="sched/main")
    etcd_backup._to_bucket(ctx, cluster, "etcd-20261201T010000Z.snapshot.sops", _seal(ctx, b"older, by tierzero"))
    time.sleep(1.1)  # LastModified has a resolution of one second
    recipient = pyrage.x25519.Recipient.from_str(ctx.workspace.age_recipient())
    key = f"sched/main/{SCHEDULED_DIR}/main-2026-12-01T03:00:00Z.snap.age"
    server.client.put_object(Bucket=server.bucket, Key=key, Body=pyrage.encrypt(SNAPSHOT, [recipient]))
    where, data = etcd_backup.read(ctx, cluster, None)
    assert where == f"s3://{server.bucket}/{key}" and data == SNAPSHOT
    other = pyrage.x25519.Identity.generate().to_public()
    server.client.put_object(Bucket=server.bucket, Key=key.replace("03:00", "04:00"), Body=pyrage.encrypt(b"x", [other]))
    with pytest.raises(InputError, match="cannot decrypt it with"):
        etcd_backup.read(ctx, cluster, "main-2026-12-01T04:00:00Z.snap.age")
    etcd_backup._to_bucket(ctx, cluster, "etcd-20261201T050000Z.snapshot.sops", _seal(ctx, SNAPSHOT))
    assert key in server.keys()  # tierzero's retention never deletes talos-backup's objects


def test_wrong_credentials_fail_naming_the_fields_and_never_the_secret(server, tmp_path):
    with enforced_credentials(server) as (key_id, secret):
        good, cluster = _project(tmp_path / "good", server, prefix="auth/main", environ={"BACKUP_KEY_ID": key_id, "BACKUP_SECRET": secret})
        etcd_backup._to_bucket(good, cluster, "etcd-20261201T000000Z.snapshot.sops", _seal(good, SNAPSHOT))
        cases = {"unknown key": {"BACKUP_KEY_ID": "AKIAUNKNOWNKEY000000", "BACKUP_SECRET": secret},
                 "wrong secret": {"BACKUP_KEY_ID": key_id, "BACKUP_SECRET": "wrong-secret-never-printed-0123456789"}}
        for i, (case, env) in enumerate(cases.items()):
            ctx, cluster = _project(tmp_path / f"bad{i}", server, prefix="auth/main", environ=env)
            with pytest.raises(OperationError) as failed:
                etcd_backup.read(ctx, cluster, None)
            text = "\n".join(failed.value.lines())
            assert "InvalidAccessKeyId" in text or "SignatureDoesNotMatch" in text, case
            assert "etcd_backups.bucket.access_key (env:BACKUP_KEY_ID)" in text and "etcd_backups.bucket.secret_key (env:BACKUP_SECRET)" in text
            assert env["BACKUP_SECRET"] not in text and secret not in text
            assert failed.value.exit_code == 1
            with pytest.raises(OperationError):
                etcd_backup._to_bucket(ctx, cluster, "etcd-20261202T000000Z.snapshot.sops", _seal(ctx, SNAPSHOT))
    assert [k for k in server.keys() if k.startswith("auth/")] == ["auth/main/etcd-20261201T000000Z.snapshot.sops"]


def test_an_upload_cut_short_leaves_no_object_and_no_snapshot(server, tmp_path):
    """A client killed mid-body (the connection closes before Content-Length bytes arrived): nothing is stored."""
    ctx, cluster = _project(tmp_path / "p", server, prefix="cut/main")
    key = "cut/main/etcd-20261201T000000Z.snapshot.sops"
    url = server.client.generate_presigned_url("put_object", Params={"Bucket": server.bucket, "Key": key}, ExpiresIn=300)
    parts = urlsplit(url)
    body = _seal(ctx, SNAPSHOT)

    def send(length: int) -> bytes:
        with socket.create_connection((parts.hostname, parts.port), timeout=30) as conn:
            conn.sendall(f"PUT {parts.path}?{parts.query} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Length: {len(body)}\r\n"
                         "Connection: close\r\n\r\n".encode())
            conn.sendall(body[:length])
            if length < len(body):
                return b""
            return conn.recv(1024)

    send(len(body) // 2)
    bucket = etcd_backup.snapshot_bucket(ctx, cluster)
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:  # the server notices the closed connection on its own time: it must never show the object
        assert key not in server.keys() and bucket.snapshots() == []
        time.sleep(0.2)
    with pytest.raises(InputError, match="no etcd snapshot of main in s3://"):
        etcd_backup.read(ctx, cluster, None)
    assert send(len(body)).startswith(b"HTTP/1.1 200")  # the same request sent whole is stored: the cut one was what failed
    assert [s.key for s in bucket.snapshots()] == [key]


def test_an_oci_bucket_is_held_to_the_object_storage_allowance(server, tmp_path, monkeypatch):
    """The whole bucket's bytes, with the new snapshot, against the dated 20 GB: over it, nothing is uploaded."""
    ctx, cluster = _project(tmp_path / "p", server, prefix="oci/main", endpoint="https://ns.compat.objectstorage.eu-frankfurt-1.oraclecloud.com")
    assert cluster.etcd_backups.bucket.is_oci
    from tierzero.adapters.s3_objects import S3Objects

    def loopback(**kw):  # the spec's endpoint is OCI's; the requests go to the loopback server instead
        kw["endpoint"] = server.endpoint
        return S3Objects(**kw)

    monkeypatch.setattr("tierzero.adapters.s3_objects.S3Objects", loopback)
    used_before = sum(o["Size"] for o in server.client.list_objects_v2(Bucket=server.bucket).get("Contents", []))
    sealed = _seal(ctx, SNAPSHOT)
    _, _, used = etcd_backup._to_bucket(ctx, cluster, "etcd-20261201T000000Z.snapshot.sops", sealed)
    assert used == used_before + len(sealed)
    from tierzero.freetier import limits

    assert limits.limits_on()["object_storage_gb"] == 20  # the dated allowance the check reads

    def tiny(on=None):  # an allowance the bucket already fills: the same check, a smaller number
        return {"object_storage_gb": (used + len(sealed) // 2) / 1024**3}

    monkeypatch.setattr(limits, "limits_on", tiny)
    with pytest.raises(RefusedError, match="over the .* GB of Object Storage Always Free allows") as refused:
        etcd_backup._to_bucket(ctx, cluster, "etcd-20261202T000000Z.snapshot.sops", sealed)
    assert "nothing was uploaded" in (refused.value.hint or "")
    assert "oci/main/etcd-20261202T000000Z.snapshot.sops" not in server.keys()
