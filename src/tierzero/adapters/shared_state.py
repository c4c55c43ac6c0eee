"""A team's shared state in an S3-compatible bucket (spec: shared_state): one run at a time across
machines, and the workspace state every run starts from.

Under `<prefix>/` in the bucket:
- `lock.json`: the run lock, a lease. Taken by creating the object only if it is absent
  (If-None-Match: *); renewed by its holder every third of the lease by replacing it only if
  unchanged (If-Match: its ETag). A holder that stops renewing (killed, cut off) leaves a lease
  whose age, on the server's clock, passes `lease_seconds`: the next run takes it over with an
  If-Match write of that very object, so two runs racing for a stale lease cannot both win.
- `workspace.tar.gz`: the workspace state (`state/state.db`, a consistent SQLite snapshot) and
  the generated secrets as they are in `.tierzero/secrets/` (SOPS-encrypted to the workspace age
  key), with `age.pub` to check every run holds the same key. Written only with If-Match (or
  If-None-Match for the first), so a write based on an older copy is refused, never merged.
- `cloud.tfstate` (and OpenTofu's own `cloud.tfstate.tflock`): see render/tofu_vars.state_backend.

Plaintext private files (age.key, SSH keys, kubeconfig, talosconfig) never go to the bucket."""

from __future__ import annotations

import getpass
import io
import json
import os
import socket
import sqlite3
import tarfile
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tierzero.adapters.s3_objects import PreconditionFailed, S3Objects
from tierzero.errors import OperationError, RefusedError

LOCK = "lock.json"
BUNDLE = "workspace.tar.gz"


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def describe(holder: dict[str, Any] | None) -> str:
    """`alice@laptop (pid 4242, deploy sandbox) since 2026-12-01 02:00:00 UTC`, from a lock's JSON."""
    if not holder:
        return "an unreadable lock"
    what = " ".join(str(holder[k]) for k in ("command", "target") if holder.get(k))
    since = f" since {_when(float(holder['acquired']))}" if isinstance(holder.get("acquired"), (int, float)) else ""
    return f"{holder.get('who', '?')} (pid {holder.get('pid', '?')}{', ' + what if what else ''}){since}"


class SharedRunLock:
    """The run lock in the bucket. `acquire` fails (RefusedError naming the holder) or waits up to
    `wait_seconds`; `release` deletes it if it is still ours. `notify` receives one-line notices."""

    def __init__(self, objects: S3Objects, prefix: str, *, lease_seconds: float, wait_seconds: float = 0.0, command: str = "", target: str = "",
                 who: str | None = None, notify: Callable[[str], None] | None = None, poll_seconds: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.objects, self.key = objects, f"{prefix}/{LOCK}"
        self.lease, self.wait, self.poll = lease_seconds, wait_seconds, poll_seconds
        self.holder = {"who": who or f"{getpass.getuser()}@{socket.gethostname()}", "pid": os.getpid(), "command": command, "target": target,
                       "token": uuid.uuid4().hex}
        self.notify = notify or (lambda message: None)
        self.clock = clock
        self.etag: str | None = None
        self.lost: str | None = None  # why the lease was lost while held (someone took it over)
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def _body(self) -> bytes:
        return json.dumps({**self.holder, "acquired": self.holder.setdefault("acquired", time.time()), "lease_seconds": self.lease}).encode()

    def acquire(self) -> None:
        deadline = self.clock() + self.wait
        told = False
        while True:
            try:
                self.etag = self.objects.put(self.key, self._body(), if_absent=True)
                break
            except PreconditionFailed:
                pass
            current = self.objects.get(self.key)
            if current is None:
                continue  # released between our write and our read
            holder = _parse(current.data)
            if current.age_seconds > float((holder or {}).get("lease_seconds", self.lease)):
                try:
                    self.etag = self.objects.put(self.key, self._body(), if_match=current.etag)
                except PreconditionFailed:
                    continue  # another run took it over first, or its holder renewed it
                self.notify(f"took over the shared run lock of {describe(holder)}: not renewed for {current.age_seconds:.0f} s")
                break
            left = deadline - self.clock()
            if left <= 0:
                raise RefusedError(f"the shared state {self.objects.url(self.key)} is locked by {describe(holder)}",
                                   hint="wait for that run to finish (or set shared_state.wait_minutes to wait for it); a holder that died "
                                        f"loses the lock {float((holder or {}).get('lease_seconds', self.lease)):.0f} s after its last renewal")
            if not told:
                self.notify(f"waiting for the shared run lock held by {describe(holder)}")
                told = True
            self._stop.wait(min(self.poll, left))
        self._require_conditional_writes()
        self._renewer = threading.Thread(target=self._renew, name="tierzero-shared-lock", daemon=True)
        self._renewer.start()

    def _require_conditional_writes(self) -> None:
        """With the lock held, write it again under a condition that cannot hold: a store that ignores
        If-None-Match or If-Match (some S3-compatible ones do, instead of answering 412 or 501) would let two
        runs hold the lock at once, so it is refused. Costs two requests per run."""
        attempts: tuple[tuple[str, dict[str, Any]], ...] = (
            ("If-None-Match: *", {"if_absent": True}), ("If-Match", {"if_match": '"tierzero-never-this-etag"'}))
        for header, condition in attempts:
            try:
                self.etag = self.objects.put(self.key, self._body(), **condition)
            except PreconditionFailed:
                continue
            self.release()
            raise OperationError(
                f"the bucket behind {self.objects.url(self.key)} ignored {header} on PutObject: two runs could hold the shared state at once",
                hint="use a store that honours conditional writes (AWS S3, MinIO) for shared_state, or remove shared_state to keep the state local")

    def _renew(self) -> None:
        while not self._stop.wait(self.lease / 3):
            try:
                self.etag = self.objects.put(self.key, self._body(), if_match=self.etag)
            except PreconditionFailed:
                self.lost = f"the shared run lock {self.objects.url(self.key)} was taken over while this run held it"
                self.notify(self.lost)
                return
            except OperationError as exc:  # the store is unreachable for now: the lease outlasts two more tries
                self.notify(f"could not renew the shared run lock: {exc.message}")

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
            self._renewer = None
        if self.etag is None or self.lost:
            return
        current = self.objects.get(self.key)
        if current is not None and (_parse(current.data) or {}).get("token") == self.holder["token"]:
            self.objects.delete(self.key)
        self.etag = None


def _parse(data: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(data)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


class SharedWorkspace:
    """The workspace bundle: `pull` it into a workspace before a run, `push` it after each step and at the end.
    Call both only while holding the SharedRunLock."""

    def __init__(self, objects: S3Objects, prefix: str, root: Path) -> None:
        self.objects, self.key, self.root = objects, f"{prefix}/{BUNDLE}", Path(root)
        self.etag: str | None = None
        self._lock = threading.Lock()

    def pull(self) -> bool:
        """Replace the local state and secrets with the bucket's; False when the bucket holds none yet.
        RefusedError when the bucket's secrets are encrypted to another age key than this workspace's."""
        stored = self.objects.get(self.key)
        if stored is None:
            self.etag = None
            return False
        with tarfile.open(fileobj=io.BytesIO(stored.data), mode="r:gz") as tar:
            members = {m.name: m for m in tar.getmembers() if m.isfile()}
            theirs = tar.extractfile(members["age.pub"]).read().decode().strip() if "age.pub" in members else None  # type: ignore[union-attr]
            ours = (self.root / "age.pub").read_text().strip() if (self.root / "age.pub").is_file() else None
            if theirs is not None and theirs != ours:
                raise RefusedError(f"the shared state {self.objects.url(self.key)} is encrypted to the age recipient {theirs}, "
                                   f"this workspace has {ours or 'none'}",
                                   hint="copy the team's .tierzero/age.key and age.pub into this workspace (they never go to the bucket)")
            for name, member in members.items():
                if name == "age.pub" or not _inside(name):
                    continue
                data = tar.extractfile(member).read()  # type: ignore[union-attr]
                _replace(self.root / name, data, fresh_db=name == "state/state.db")
        self.etag = stored.etag
        return True

    def push(self) -> None:
        """Write this workspace's state and secrets to the bucket, if the bucket still holds what this run pulled or last pushed."""
        with self._lock:
            data = self._bundle()
            try:
                self.etag = self.objects.put(self.key, data, if_match=self.etag) if self.etag else self.objects.put(self.key, data, if_absent=True)
            except PreconditionFailed:
                raise OperationError(f"the shared state {self.objects.url(self.key)} was changed by another run while this one held the lock",
                                     hint="this run's state is still in .tierzero/state; run again once the other run has finished") from None

    def _bundle(self) -> bytes:
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w:gz", compresslevel=6) as tar:
            if (self.root / "age.pub").is_file():
                _add(tar, "age.pub", (self.root / "age.pub").read_bytes())
            db = self.root / "state" / "state.db"
            if db.is_file():
                _add(tar, "state/state.db", _snapshot(db))
            for path in sorted((self.root / "secrets").rglob("*.sops.yaml")) if (self.root / "secrets").is_dir() else []:
                _add(tar, str(path.relative_to(self.root)), path.read_bytes())
        return out.getvalue()


def _inside(name: str) -> bool:
    parts = Path(name).parts
    return bool(parts) and ".." not in parts and not Path(name).is_absolute() and (name == "state/state.db" or (parts[0] == "secrets" and name.endswith(".sops.yaml")))


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o600, 0
    tar.addfile(info, io.BytesIO(data))


def _snapshot(db: Path) -> bytes:
    """A consistent copy of a live SQLite database (the online backup API: WAL contents included)."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "state.db"
        source, target = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30), sqlite3.connect(copy)
        try:
            source.backup(target)
        finally:
            source.close()
            target.close()
        return copy.read_bytes()


def _replace(path: Path, data: bytes, *, fresh_db: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if fresh_db:  # a stale write-ahead log beside the new database would be replayed into it
        for suffix in ("-wal", "-shm"):
            path.with_name(path.name + suffix).unlink(missing_ok=True)
    tmp = path.with_name(f".{path.name}.pull{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, path)
