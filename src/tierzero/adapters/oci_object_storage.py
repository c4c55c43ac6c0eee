"""OCI Object Storage through the official SDK: a private bucket, and a file uploaded into it in parts
that resumes an interrupted upload instead of starting over, within a byte budget.

    store = ObjectStore(Oci.connect(connections, spec))
    info = store.upload(compartment_id, "tierzero-images", "talos-….vmdk", path, budget_bytes=20 * 2**30)

Facts, with their sources (OCI Python SDK 2.x, `oci/object_storage/`):
- `UploadManager.upload_file` goes multipart above `part_size` (default 128 MiB) with up to 3 parallel part
  uploads, and does not return or abort the upload on failure; `resume_upload_file(…, upload_id, part_size)`
  lists the parts already there and sends only the rest (transfer/upload_manager.py), with the same
  part size as the original (it refuses another).
- `list_multipart_uploads` lists a bucket's in-progress uploads; HEAD on a missing object is 404 with no
  body (code None), so existence is judged on the status.
- An object's user metadata travels as `opc-meta-*` headers and comes back from HEAD.
Errors are tierzero errors (`tierzero.adapters.errors.from_oci`); a budget overrun is a RefusedError
raised before any byte is sent."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from tierzero.adapters.errors import from_oci
from tierzero.adapters.oci import Oci, translated
from tierzero.errors import RefusedError

PART_SIZE = 128 * 1024 * 1024  # the SDK's default part size; a resumed upload must use the one it started with
SHA256_META = "opc-meta-sha256"  # the file's sha256, kept with the object: a second upload of the same file is skipped


@dataclass(frozen=True)
class ObjectInfo:
    namespace: str
    bucket: str
    name: str
    size: int
    sha256: str | None  # from the object's metadata (None: not uploaded by tierzero)
    uploaded: bool = False  # this call sent bytes (False: the object was already there)
    resumed: bool = False  # this call continued an interrupted multipart upload


def file_sha256(path: Path) -> str:
    """Hex SHA256 of the file at PATH, read in chunks (constant memory)."""
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _bounded_retries() -> Any:
    import oci

    return oci.retry.RetryStrategyBuilder(
        max_attempts_check=True, max_attempts=3, total_elapsed_time_check=True, total_elapsed_time_seconds=120,
        retry_max_wait_between_calls_seconds=20, retry_base_sleep_time_seconds=2, service_error_check=True,
        service_error_retry_on_any_5xx=True, service_error_retry_config={429: [], 409: ["IncorrectState", "ConcurrentObjectUpdate"]},
    ).get_retry_strategy()


class ObjectStore:
    """Buckets and objects of the tenancy's Object Storage namespace."""

    def __init__(self, oci_api: Oci, *, retry_strategy: Any = None) -> None:
        """`retry_strategy`: the SDK's, per request (default: 3 attempts within 2 minutes; the SDK's own default
        keeps at it for 10 minutes per part, and an interrupted upload is resumed by the next run anyway)."""
        import oci

        self._oci = oci_api
        self.client = oci_api.client(oci.object_storage.ObjectStorageClient)
        self.client.retry_strategy = retry_strategy if retry_strategy is not None else _bounded_retries()
        self._namespace: str | None = None

    @property
    def namespace(self) -> str:
        """The tenancy's Object Storage namespace (GET /n; the answer is a JSON string)."""
        if self._namespace is None:
            with translated("OCI Object Storage namespace"):
                self._namespace = str(self.client.get_namespace().data)
        return self._namespace

    def ensure_bucket(self, compartment_id: str, bucket: str) -> bool:
        """Create the bucket (private, Standard tier) unless it exists; True when it was created."""
        import oci

        with translated(f"OCI bucket {bucket}"):
            try:
                self.client.head_bucket(self.namespace, bucket)
                return False
            except oci.exceptions.ServiceError as exc:
                if exc.status != 404:
                    raise
            details = oci.object_storage.models.CreateBucketDetails(
                name=bucket, compartment_id=compartment_id, public_access_type="NoPublicAccess", storage_tier="Standard")
            self.client.create_bucket(self.namespace, details)
        return True

    def head(self, bucket: str, name: str) -> ObjectInfo | None:
        """The object, or None when there is none."""
        import oci

        with translated(f"OCI object {bucket}/{name}"):
            try:
                headers = self.client.head_object(self.namespace, bucket, name).headers
            except oci.exceptions.ServiceError as exc:
                if exc.status == 404:
                    return None
                raise
        return ObjectInfo(self.namespace, bucket, name, int(headers.get("content-length") or 0), headers.get(SHA256_META))

    def used_bytes(self, compartment_id: str) -> int:
        """What the compartment's buckets hold (each bucket's approximateSize)."""
        with translated("OCI buckets"):
            summaries = self.client.list_buckets(self.namespace, compartment_id).data
            total = 0
            for summary in summaries:
                bucket = self.client.get_bucket(self.namespace, summary.name, fields=["approximateSize"]).data
                total += int(bucket.approximate_size or 0)
        return total

    def _in_progress(self, bucket: str, name: str) -> str | None:
        with translated(f"OCI multipart uploads of {bucket}"):
            uploads = self.client.list_multipart_uploads(self.namespace, bucket).data
        ids = [u.upload_id for u in uploads if u.object == name]
        return ids[-1] if ids else None

    def upload(self, compartment_id: str, bucket: str, name: str, path: Path, *, budget_bytes: int | None = None,
               part_size: int = PART_SIZE, on_progress: Callable[[str], None] | None = None) -> ObjectInfo:
        """Put `path` into `bucket` as `name` (the bucket is created when missing). The same file already there
        (by its sha256) is not sent again; an interrupted multipart upload of `name` is resumed with
        `part_size`. With `budget_bytes` (the free 20 GB), refuses before sending when the compartment's buckets
        plus this file would exceed it. Returns what is in the bucket now."""
        import oci

        size = path.stat().st_size
        digest = file_sha256(path)
        self.ensure_bucket(compartment_id, bucket)
        present = self.head(bucket, name)
        if present is not None and present.sha256 == digest and present.size == size:
            return present
        if budget_bytes is not None:
            used = self.used_bytes(compartment_id) - (present.size if present else 0)
            if used + size > budget_bytes:
                gib = 1024**3
                raise RefusedError(
                    f"uploading {name} ({size / gib:.2f} GiB) would bring Object Storage to {(used + size) / gib:.2f} GiB, "
                    f"over the {budget_bytes / gib:g} GiB Always Free allows",
                    hint=f"delete objects you no longer need from the compartment's buckets (they hold {used / gib:.2f} GiB now)")
        manager = oci.object_storage.UploadManager(self.client, allow_parallel_uploads=True)
        upload_id = self._in_progress(bucket, name)
        metadata = {SHA256_META.removeprefix("opc-meta-"): digest}  # the SDK adds the opc-meta- prefix
        what = f"OCI upload of {name} to {bucket}"
        try:
            if upload_id is not None:
                if on_progress:
                    on_progress(f"resuming the upload of {name} ({upload_id})")
                manager.resume_upload_file(self.namespace, bucket, name, str(path), upload_id, part_size=part_size)
            else:
                manager.upload_file(self.namespace, bucket, name, str(path), part_size=part_size, metadata=metadata)
        except Exception as exc:  # noqa: BLE001  (every failure of the SDK's upload threads ends here)
            cause = exc.error_causes[0] if isinstance(exc, oci.exceptions.MultipartUploadError) and exc.error_causes else exc
            error = from_oci(cause, what)
            error.hint = "run the deploy again: it resumes this upload and sends only the parts OCI lacks"
            raise error from exc
        done = self.head(bucket, name)
        if done is None:
            raise RefusedError(f"the upload of {name} to {bucket} finished but the object is not there", hint="run again")
        return ObjectInfo(done.namespace, bucket, name, done.size, done.sha256, uploaded=True, resumed=upload_id is not None)

    def delete(self, bucket: str, name: str) -> bool:
        """Remove the object; False when there was none."""
        import oci

        with translated(f"OCI delete {bucket}/{name}"):
            try:
                self.client.delete_object(self.namespace, bucket, name)
                return True
            except oci.exceptions.ServiceError as exc:
                if exc.status == 404:
                    return False
                raise
