"""Two workspaces (two people, or a person and CI) against one shared_state bucket, as users run
tierzero: the second is refused naming the first while it runs, or waits for it; their runs never
overlap; the second starts from the state the first wrote. The bucket is moto's S3 server."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from s3_server import ACCESS_KEY, REGION, SECRET_KEY, s3_server
from spec_builder import write_project

from tierzero.adapters.s3_objects import S3Objects
from tierzero.adapters.shared_state import SharedRunLock

ENV = {**os.environ, "TZ_S3_ACCESS": ACCESS_KEY, "TZ_S3_SECRET": SECRET_KEY}


def tz(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tierzero", *args], capture_output=True, text=True, timeout=240, env=ENV)


def workspaces(root: Path, endpoint: str, bucket: str, wait_minutes: int = 0) -> tuple[Path, Path]:
    shared = {"bucket": bucket, "endpoint": endpoint, "region": REGION, "prefix": "homelab", "access_key": "env:TZ_S3_ACCESS",
              "secret_key": "env:TZ_S3_SECRET", "wait_minutes": wait_minutes}
    specs = []
    for name in ("alice", "bob"):
        spec = write_project(root / name, "proxmox", {"shared_state": shared})
        assert tz("init", str(spec.parent)).returncode == 0
        specs.append(spec)
    for key in ("age.key", "age.pub"):  # the team shares one age key, out of band: it never goes to the bucket
        shutil.copy2(specs[0].parent / ".tierzero" / key, specs[1].parent / ".tierzero" / key)
    return specs[0], specs[1]


@pytest.fixture
def server():
    with s3_server() as s3:
        yield s3


def test_a_second_workspace_is_refused_naming_the_run_that_holds_the_platform(server, tmp_path):
    alice, bob = workspaces(tmp_path, server.endpoint, server.bucket)
    objects = S3Objects(endpoint=server.endpoint, region=REGION, bucket=server.bucket, access_key=ACCESS_KEY, secret_key=SECRET_KEY)
    held = SharedRunLock(objects, "homelab", lease_seconds=300, who="alice@laptop", command="deploy", target="sandbox")
    held.acquire()
    refused = tz("deploy", "-f", str(bob), "--target", "sandbox", "--only", "setup", "--yes")
    assert refused.returncode == 1, refused.stderr
    assert f"the shared state s3://{server.bucket}/homelab/lock.json is locked by alice@laptop" in refused.stderr
    assert "Traceback" not in refused.stderr and not (bob.parent / ".tierzero" / "state" / "state.db").exists()
    held.release()

    done = tz("deploy", "-f", str(bob), "--target", "sandbox", "--only", "setup", "--yes")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "homelab/workspace.tar.gz" in server.keys() and "homelab/lock.json" not in server.keys()
    blob = server.read("homelab/workspace.tar.gz")
    assert SECRET_KEY.encode() not in blob and b"AGE-SECRET-KEY" not in blob
    logs = b"".join(p.read_bytes() for p in (bob.parent / ".tierzero" / "logs").iterdir())
    assert SECRET_KEY.encode() not in logs


def test_a_workspace_started_while_another_runs_waits_for_it_and_never_overlaps(server, tmp_path):
    alice, bob = workspaces(tmp_path, server.endpoint, server.bucket, wait_minutes=5)
    def start(spec: Path) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "tierzero", "deploy", "-f", str(spec), "--target", "sandbox", "--only", "setup",
                                 "--yes", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)

    runs = [start(alice)]
    deadline = time.monotonic() + 120
    while "homelab/lock.json" not in server.keys():  # alice holds the platform: now bob starts
        assert runs[0].poll() is None and time.monotonic() < deadline, runs[0].communicate()[1][-2000:]
        time.sleep(0.05)
    runs.append(start(bob))
    outputs = [run.communicate(timeout=240) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], [err[-2000:] for _, err in outputs]
    events = [[json.loads(line) for line in out.splitlines() if line.strip()] for out, _ in outputs]
    waited = [any(e["event"] == "log" and "waiting for the shared run lock held by" in e.get("message", "") for e in stream) for stream in events]
    assert waited == [False, True]  # bob waited for alice, naming her run

    (tmp_path / "final.db").write_bytes(_member(server.read("homelab/workspace.tar.gz"), "state/state.db"))
    db = sqlite3.connect(tmp_path / "final.db")
    spans = db.execute("SELECT started, finished FROM runs WHERE command = 'deploy' ORDER BY started").fetchall()
    db.close()
    # two runs in the last state written: bob started from the state alice wrote; his began after hers ended
    assert len(spans) == 2 and spans[0][1] is not None and spans[0][1] <= spans[1][0]


def _member(tar_gz: bytes, name: str) -> bytes:
    import io
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(tar_gz), mode="r:gz") as tar:
        member = tar.extractfile(name)
        assert member is not None
        return member.read()
