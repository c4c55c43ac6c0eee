"""The shared state against a real S3 API (moto's server on loopback): the run lock admits one run
at a time and names the holder, waits when asked, survives while renewed, is taken over once its
lease runs out, and the workspace bundle moves state and encrypted secrets, never plaintext keys."""

from __future__ import annotations

import io
import json
import tarfile
import threading
import time
from pathlib import Path

import pytest
from s3_server import ACCESS_KEY, REGION, SECRET_KEY, s3_server

from tierzero.adapters.s3_objects import PreconditionFailed, S3Objects
from tierzero.adapters.shared_state import SharedRunLock, SharedWorkspace
from tierzero.engine.state import StateStore
from tierzero.errors import OperationError, RefusedError


@pytest.fixture(scope="module")
def server():
    with s3_server() as s3:
        yield s3


@pytest.fixture
def objects(server, request) -> S3Objects:
    return S3Objects(endpoint=server.endpoint, region=REGION, bucket=server.bucket, access_key=ACCESS_KEY, secret_key=SECRET_KEY)


@pytest.fixture
def prefix(request) -> str:
    return f"t/{request.node.name[:40].replace('[', '-').replace(']', '')}"


def test_the_emulator_refuses_what_s3_refuses(objects, prefix):
    """If-None-Match: * on an existing key and If-Match with an old ETag both fail; the right ETag wins."""
    first = objects.put(f"{prefix}/k", b"1", if_absent=True)
    with pytest.raises(PreconditionFailed):
        objects.put(f"{prefix}/k", b"2", if_absent=True)
    second = objects.put(f"{prefix}/k", b"3", if_match=first)
    with pytest.raises(PreconditionFailed):
        objects.put(f"{prefix}/k", b"4", if_match=first)
    stored = objects.get(f"{prefix}/k")
    assert stored is not None and stored.data == b"3" and stored.etag == second and stored.age_seconds < 60
    objects.delete(f"{prefix}/k")
    with pytest.raises(PreconditionFailed):  # S3: 404 NoSuchKey, the lease was lost all the same
        objects.put(f"{prefix}/k", b"5", if_match=second)
    assert objects.get(f"{prefix}/k") is None


class _Unconditional(S3Objects):
    """A store that accepts the headers and ignores them, as some S3-compatible ones do."""

    def put(self, key: str, data: bytes, *, if_match: str | None = None, if_absent: bool = False) -> str:
        return super().put(key, data)


def test_a_store_that_ignores_conditional_writes_is_refused_and_left_unlocked(server, prefix):
    objects = _Unconditional(endpoint=server.endpoint, region=REGION, bucket=server.bucket, access_key=ACCESS_KEY, secret_key=SECRET_KEY)
    lock = SharedRunLock(objects, prefix, lease_seconds=30)
    with pytest.raises(OperationError) as refused:
        lock.acquire()
    assert "ignored If-None-Match: *" in refused.value.message and "AWS S3" in (refused.value.hint or "")
    assert objects.get(f"{prefix}/lock.json") is None


def test_a_second_run_is_refused_naming_the_holder_until_the_first_releases(objects, prefix):
    alice = SharedRunLock(objects, prefix, lease_seconds=60, who="alice@laptop", command="deploy", target="real")
    bob = SharedRunLock(objects, prefix, lease_seconds=60, who="bob@ci")
    alice.acquire()
    with pytest.raises(RefusedError) as refused:
        bob.acquire()
    assert "locked by alice@laptop (pid" in refused.value.message and "deploy real" in refused.value.message
    assert f"{prefix}/lock.json" in refused.value.message and "wait_minutes" in (refused.value.hint or "")
    alice.release()
    bob.acquire()
    assert json.loads(objects.get(f"{prefix}/lock.json").data)["who"] == "bob@ci"
    bob.release()
    assert objects.get(f"{prefix}/lock.json") is None


def test_a_waiting_run_starts_only_after_the_holder_released(objects, prefix):
    holder = SharedRunLock(objects, prefix, lease_seconds=60, who="alice@laptop")
    holder.acquire()
    waiting = threading.Event()
    order: list[str] = []
    waiter = SharedRunLock(objects, prefix, lease_seconds=60, wait_seconds=60, poll_seconds=0.05, who="bob@ci",
                           notify=lambda m: waiting.set() if m.startswith("waiting for the shared run lock held by alice@laptop") else None)

    def run() -> None:
        waiter.acquire()
        order.append("bob")
        waiter.release()

    thread = threading.Thread(target=run)
    thread.start()
    assert waiting.wait(30)
    order.append("alice done")
    holder.release()
    thread.join(30)
    assert order == ["alice done", "bob"]


def test_a_renewed_lease_is_never_taken_over_and_a_dead_holders_is(objects, prefix):
    live = SharedRunLock(objects, prefix, lease_seconds=3, who="alice@laptop")
    live.acquire()
    start = time.monotonic()
    while time.monotonic() - start < 4.5:  # longer than the lease: only the renewals keep it
        with pytest.raises(RefusedError):
            SharedRunLock(objects, prefix, lease_seconds=3, who="bob@ci").acquire()
        time.sleep(0.3)
    assert live.lost is None
    live._stop.set()  # the holder dies: no renewal, no release
    live._renewer.join()
    notices: list[str] = []
    taker = SharedRunLock(objects, prefix, lease_seconds=3, wait_seconds=30, poll_seconds=0.1, who="bob@ci", notify=notices.append)
    taker.acquire()
    assert any(n.startswith("took over the shared run lock of alice@laptop") for n in notices)
    taker.release()


def test_a_holder_whose_lock_was_taken_over_notices_and_leaves_the_new_holders_lock(objects, prefix):
    lock = SharedRunLock(objects, prefix, lease_seconds=0.6, who="alice@laptop", notify=lambda m: None)
    lock.acquire()
    stored = objects.get(f"{prefix}/lock.json")
    objects.put(f"{prefix}/lock.json", json.dumps({"who": "bob@ci", "token": "bob"}).encode(), if_match=stored.etag)
    deadline = time.monotonic() + 30
    while lock.lost is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert lock.lost and "taken over" in lock.lost
    lock.release()
    assert json.loads(objects.get(f"{prefix}/lock.json").data)["who"] == "bob@ci"


def _workspace(root: Path, recipient: str = "age1teamrecipient") -> Path:
    (root / "secrets" / "talos" / "main").mkdir(parents=True)
    (root / "age.pub").write_text(recipient + "\n")
    (root / "age.key").write_text("AGE-SECRET-KEY-1NEVERINTHEBUCKET\n")
    (root / "clusters" / "main").mkdir(parents=True)
    (root / "clusters" / "main" / "kubeconfig").write_text("client-key-data: NEVERINTHEBUCKET\n")
    (root / "secrets" / "talos" / "main" / "secrets.yaml.sops.yaml").write_text("sops: {mac: ENC[...]}\n")
    return root


def test_the_workspace_bundle_carries_state_and_encrypted_secrets_only(objects, prefix, tmp_path):
    alice = _workspace(tmp_path / "alice")
    store = StateStore.open(alice / "state", "real")
    store.mark_running("setup/render", "setup", "fp1", None)
    store.mark_done("setup/render", {"files": 3})
    bundle = SharedWorkspace(objects, prefix, alice)
    assert bundle.pull() is False
    bundle.push()  # while the store is open: the snapshot includes what is still in the write-ahead log
    store.close()

    stored = objects.get(f"{prefix}/workspace.tar.gz")
    with tarfile.open(fileobj=io.BytesIO(stored.data), mode="r:gz") as tar:
        names = sorted(tar.getnames())
        blob = b"".join(tar.extractfile(m).read() for m in tar.getmembers())
    assert names == ["age.pub", "secrets/talos/main/secrets.yaml.sops.yaml", "state/state.db"]
    assert b"NEVERINTHEBUCKET" not in blob

    bob = tmp_path / "bob"
    (bob / "state").mkdir(parents=True)
    (bob / "age.pub").write_text("age1teamrecipient\n")
    (bob / "state" / "state.db-wal").write_bytes(b"stale")
    assert SharedWorkspace(objects, prefix, bob).pull() is True
    assert not (bob / "state" / "state.db-wal").exists()
    records = StateStore.open(bob / "state", "real").records()
    assert records["setup/render"].status == "done" and records["setup/render"].outputs == {"files": 3}
    assert (bob / "secrets/talos/main/secrets.yaml.sops.yaml").read_text() == "sops: {mac: ENC[...]}\n"


def test_a_workspace_with_another_age_key_is_refused(objects, prefix, tmp_path):
    SharedWorkspace(objects, prefix, _workspace(tmp_path / "alice")).push()
    other = _workspace(tmp_path / "mallory", recipient="age1someoneelse")
    with pytest.raises(RefusedError, match="encrypted to the age recipient age1teamrecipient, this workspace has age1someoneelse"):
        SharedWorkspace(objects, prefix, other).pull()
    assert (other / "secrets/talos/main/secrets.yaml.sops.yaml").read_text() == "sops: {mac: ENC[...]}\n"


def test_a_push_based_on_an_older_copy_is_refused(objects, prefix, tmp_path):
    root = _workspace(tmp_path / "alice")
    first = SharedWorkspace(objects, prefix, root)
    first.push()
    stale, fresh = SharedWorkspace(objects, prefix, root), SharedWorkspace(objects, prefix, root)
    stale.pull()
    fresh.pull()
    (root / "secrets" / "talos" / "main" / "other.sops.yaml").write_text("sops: {mac: ENC[2]}\n")  # (the same bytes would be the same ETag)
    fresh.push()
    with pytest.raises(OperationError, match="was changed by another run while this one held the lock"):
        stale.push()
