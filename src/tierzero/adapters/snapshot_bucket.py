"""etcd snapshots of one cluster in an S3-compatible bucket (spec: clusters[].etcd_backups.bucket).

Under the cluster's prefix (default `etcd/<cluster>`):
- `<prefix>/etcd-<YYYYMMDDTHHMMSSZ>.snapshot.sops`: what `tierzero backup` uploads, the snapshot
  SOPS-encrypted (age) before it leaves the machine; the only objects tierzero's retention deletes.
- `<prefix>/scheduled/<cluster>-<RFC 3339 time>.snap.age`: what the scheduled siderolabs/talos-backup
  CronJob uploads (S3_PREFIX = `<prefix>/scheduled`), the snapshot age-encrypted to
  AGE_X25519_PUBLIC_KEY. The key is `fmt.Sprintf("%s/%s", s3Prefix, snapPath)` with snapPath
  `fmt.Sprintf("%s-%s.snap", clusterName, time.Now().Format(time.RFC3339))` + ".age"
  (siderolabs/talos-backup v0.1.0-beta.3: pkg/s3/s3.go PushSnapshot, pkg/talos/talos.go
  TakeEtcdSnapshot, pkg/encryption/encryption.go EncryptFile). talos-backup deletes nothing.
Any other object is left alone and never read as a snapshot.

Uploads are single PutObjects (tierzero.adapters.s3_objects): a killed upload leaves no object.
Credentials are given to the client only; they never appear in a message."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from tierzero.adapters.s3_objects import ListedObject, S3Objects
from tierzero.errors import InputError

SUFFIX = ".snapshot.sops"
TIERZERO_NAME = re.compile(r"^etcd-\d{8}T\d{6}Z" + re.escape(SUFFIX) + r"$")
SCHEDULED_DIR = "scheduled"
# RFC 3339 as Go's time.RFC3339 writes it: seconds, then Z or a numeric offset.
TALOS_BACKUP_NAME = re.compile(r"^[A-Za-z0-9._-]+-\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(Z|[+-]\d{2}:\d{2})\.snap\.age$")

Kind = Literal["tierzero", "talos-backup"]


@dataclass(frozen=True)
class BucketSnapshot:
    key: str
    size: int  # bytes as stored (encrypted)
    modified: float  # LastModified on the server's clock, epoch seconds
    kind: Kind  # tierzero: SOPS binary; talos-backup: raw age

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]


class SnapshotBucket:
    """The snapshots of one cluster under `prefix` in a bucket."""

    def __init__(self, objects: S3Objects, prefix: str) -> None:
        self.objects, self.prefix = objects, prefix.strip("/")

    def url(self, key: str = "") -> str:
        return self.objects.url(key or self.prefix + "/")

    def key_for(self, name: str) -> str:
        return f"{self.prefix}/{name}"

    def snapshots(self) -> list[BucketSnapshot]:
        """Every tierzero and talos-backup snapshot of the cluster, oldest first (LastModified, then key)."""
        found: list[BucketSnapshot] = []
        for obj in self.objects.listed(self.prefix + "/"):
            kind = self._kind(obj)
            if kind is not None:
                found.append(BucketSnapshot(obj.key, obj.size, obj.modified, kind))
        return sorted(found, key=lambda s: (s.modified, s.key))

    def _kind(self, obj: ListedObject) -> Kind | None:
        rest = obj.key[len(self.prefix) + 1:]
        if TIERZERO_NAME.match(rest):
            return "tierzero"
        directory, _, name = rest.rpartition("/")
        if directory == SCHEDULED_DIR and TALOS_BACKUP_NAME.match(name):
            return "talos-backup"
        return None

    def upload(self, name: str, sealed: bytes) -> BucketSnapshot:
        """Store an encrypted snapshot as `<prefix>/<name>`; refuses a name that is not a tierzero snapshot's."""
        if not TIERZERO_NAME.match(name):
            raise ValueError(f"not a tierzero snapshot name: {name}")
        key = self.key_for(name)
        self.objects.put_whole(key, sealed)
        return BucketSnapshot(key, len(sealed), 0.0, "tierzero")

    def find(self, name: str) -> BucketSnapshot:
        """The snapshot called `name` (its file name, or its key); InputError listing what there is."""
        found = self.snapshots()
        for snap in found:
            if name in (snap.key, snap.name):
                return snap
        have = ", ".join(s.name for s in found[-5:]) or "none"
        raise InputError(f"--snapshot {name}: no such snapshot in {self.url()}", hint=f"the newest there: {have}")

    def read(self, snap: BucketSnapshot) -> bytes:
        stored = self.objects.get(snap.key)
        if stored is None:
            raise InputError(f"{self.url(snap.key)} is gone (deleted since it was listed)", hint="run restore again to pick another")
        return stored.data

    def delete(self, snap: BucketSnapshot) -> None:
        if snap.kind != "tierzero":
            raise ValueError(f"tierzero deletes its own snapshots only, not {snap.key}")
        self.objects.delete(snap.key)

    def bucket_bytes(self) -> int:
        """Every object in the whole bucket, in bytes: what Object Storage counts against an allowance."""
        return sum(o.size for o in self.objects.listed(""))
