"""Objects in an S3-compatible bucket with conditional writes, through boto3 (the AWS SDK for
Python), for the shared state (adapters/shared_state.py) and etcd snapshots (adapters/snapshot_bucket.py).

Facts used:
- PutObject with `If-None-Match: *` creates the object only if the key is absent, and with
  `If-Match: <ETag>` replaces it only if it is unchanged; otherwise 412 PreconditionFailed, or 409
  ConditionalRequestConflict while another conditional write to the key is in flight (AWS S3 user
  guide, "Add preconditions to S3 operations with conditional requests"). Terraform's `use_lockfile`
  relies on the first (hashicorp/terraform internal/backend/remote-state/s3/client.go, lockWithFile).
- botocore >= 1.36 adds CRC checksums to every upload unless `request_checksum_calculation` is
  `when_required`; S3-compatible stores that predate them (OCI's S3 API, older MinIO) refuse them.
- A PutObject is atomic: the object is visible only once the whole body has arrived, and a request
  cut short leaves nothing (AWS S3 user guide, "Uploading objects": "Amazon S3 never adds partial
  objects"); with Content-MD5 the server also refuses a body that arrived damaged (400 BadDigest).
- ListObjectsV2 returns at most 1,000 keys per page, with a continuation token for the next.
- The response's `Date` header is the server's clock (RFC 9110 section 6.6.1): lease ages are measured
  on the server's clock alone, LastModified against Date, so the clients' clocks never matter.

Credentials are passed to the client, never written anywhere, and botocore's errors do not carry them."""

from __future__ import annotations

from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

from tierzero.errors import OperationError


class PreconditionFailed(Exception):
    """The conditional write lost: the key exists (If-None-Match) or changed (If-Match)."""


@dataclass(frozen=True)
class ListedObject:
    key: str
    size: int  # bytes
    modified: float  # LastModified, seconds since the epoch (the server's clock)


@dataclass(frozen=True)
class StoredObject:
    data: bytes
    etag: str
    age_seconds: float  # server's Date minus the object's LastModified


_CONFLICT_CODES = {"PreconditionFailed", "ConditionalRequestConflict", "412", "409"}
_MISSING_CODES = {"NoSuchKey", "404", "NotFound"}


class S3Objects:
    """One bucket at `endpoint`, path-style addressing, SigV4 signed with the given keys."""

    def __init__(self, *, endpoint: str, region: str, bucket: str, access_key: str, secret_key: str, timeout: float = 30.0,
                 label: str = "shared state", credentials: str = "the shared_state access_key/secret_key references") -> None:
        import boto3
        from botocore.config import Config

        self.bucket, self.endpoint = bucket, endpoint.rstrip("/")
        self.label, self.credentials = label, credentials
        config = Config(region_name=region, signature_version="s3v4", s3={"addressing_style": "path"},
                        retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=min(timeout, 10.0), read_timeout=timeout,
                        request_checksum_calculation="when_required", response_checksum_validation="when_required")
        self._client: Any = boto3.session.Session().client("s3", endpoint_url=self.endpoint, aws_access_key_id=access_key,
                                                           aws_secret_access_key=secret_key, config=config)

    def url(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def _failure(self, exc: Exception, what: str, key: str) -> OperationError:
        code, message = _error(exc)
        if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403"):
            hint = f"check {self.credentials} and the key's permissions on the bucket"
        elif code == "NoSuchBucket":
            hint = f"create the bucket {self.bucket} at {self.endpoint} first (tierzero does not create it)"
        else:
            hint = f"check that {self.endpoint} is reachable and is an S3 API"
        return OperationError(f"{self.label}: {what} {self.url(key)} failed: {code}: {message}", hint=hint)

    def get(self, key: str) -> StoredObject | None:
        """The object, or None when there is none."""
        try:
            out = self._client.get_object(Bucket=self.bucket, Key=key)
            data = out["Body"].read()
        except Exception as exc:
            if _error(exc)[0] in _MISSING_CODES:
                return None
            raise self._failure(exc, "reading", key) from None
        served = out.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
        age = 0.0
        if served and out.get("LastModified") is not None:
            age = max(0.0, (parsedate_to_datetime(served) - out["LastModified"]).total_seconds())
        return StoredObject(data, str(out["ETag"]), age)

    def listed(self, prefix: str = "") -> list[ListedObject]:
        """Every object whose key starts with `prefix` (all pages), in key order."""
        out: list[ListedObject] = []
        token: str | None = None
        while True:
            args: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
            if token:
                args["ContinuationToken"] = token
            try:
                page = self._client.list_objects_v2(**args)
            except Exception as exc:
                raise self._failure(exc, "listing", prefix) from None
            out += [ListedObject(str(o["Key"]), int(o["Size"]), o["LastModified"].timestamp()) for o in page.get("Contents", [])]
            token = page.get("NextContinuationToken") if page.get("IsTruncated") else None
            if not token:
                return out

    def put_whole(self, key: str, data: bytes) -> str:
        """Write the object in one PutObject with Content-MD5: it appears whole or not at all; its ETag."""
        import base64
        import hashlib

        digest = base64.b64encode(hashlib.md5(data).digest()).decode()  # noqa: S324 - S3's integrity check, not security
        try:
            out = self._client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentMD5=digest, ContentType="application/octet-stream")
        except Exception as exc:
            raise self._failure(exc, "writing", key) from None
        return str(out["ETag"])

    def put(self, key: str, data: bytes, *, if_match: str | None = None, if_absent: bool = False) -> str:
        """Write the object, only if absent (`if_absent`) or unchanged since `if_match`; its new ETag.
        PreconditionFailed when the condition does not hold, including `if_match` on an object deleted meanwhile
        (S3 answers that with 404 NoSuchKey; AWS S3 API reference, PutObject, "If-Match")."""
        extra: dict[str, str] = {}
        if if_absent:
            extra["IfNoneMatch"] = "*"
        if if_match is not None:
            extra["IfMatch"] = if_match
        try:
            out = self._client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType="application/octet-stream", **extra)
        except Exception as exc:
            code = _error(exc)[0]
            if extra and code in _CONFLICT_CODES or if_match is not None and code in _MISSING_CODES:
                raise PreconditionFailed(key) from None
            raise self._failure(exc, "writing", key) from None
        return str(out["ETag"])

    def delete(self, key: str) -> None:
        try:
            self._client.delete_object(Bucket=self.bucket, Key=key)
        except Exception as exc:
            if _error(exc)[0] not in _MISSING_CODES:
                raise self._failure(exc, "deleting", key) from None


def _error(exc: Exception) -> tuple[str, str]:
    """(code, message) of a botocore error; a connection failure is ("unreachable", its text)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        err = response.get("Error", {})
        code = str(err.get("Code") or response.get("ResponseMetadata", {}).get("HTTPStatusCode", "error"))
        return code, str(err.get("Message") or "")
    return "unreachable", str(exc)
