"""clusters[].etcd_backups: where `tierzero backup` keeps etcd snapshots (the workspace, or an
S3-compatible bucket), how many, and an optional schedule that renders siderolabs/talos-backup as a
CronJob into the cluster's GitOps tree instead of relying on a timer on the workspace's machine."""

from __future__ import annotations

import re

from pydantic import Field, model_validator

from tierzero.spec.base import Model
from tierzero.spec.refs import SecretRef

# Kubernetes CronJob `schedule`: five cron fields, or a macro (kubernetes.io/docs/concepts/workloads/
# controllers/cron-jobs, "Schedule syntax"; robfig/cron v3 ParseStandard). Each field: *, numbers,
# ranges, lists, steps, month/day names.
_CRON_FIELD = r"[0-9A-Za-z*?/,\-]+"
CRON_PATTERN = rf"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|{_CRON_FIELD}( {_CRON_FIELD}){{4}})$"
OCI_S3_HOST = re.compile(r"^https://[a-z0-9-]+\.compat\.objectstorage\.[a-z0-9-]+\.oraclecloud\.com/?$")


class BackupBucket(Model):
    """An S3-compatible bucket that already exists: OCI Object Storage's S3 compatibility API
    (https://NAMESPACE.compat.objectstorage.REGION.oraclecloud.com, region = the OCI region identifier,
    keys = a Customer Secret Key; docs.oracle.com, "Amazon S3 Compatibility API"), MinIO (region
    us-east-1 unless configured), or AWS S3 (https://s3.REGION.amazonaws.com). Credentials are
    references (env:, file:, sops:), never the keys themselves."""

    bucket: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", description="an existing bucket (S3 bucket naming rules)")
    endpoint: str = Field(pattern=r"^https?://[^/\s]+/?$", description="the S3 API URL, like https://NAMESPACE.compat.objectstorage.REGION.oraclecloud.com")
    region: str = Field(min_length=1, pattern=r"^[a-z0-9-]+$", description="the region the endpoint signs for (OCI: the region identifier, MinIO: us-east-1)")
    prefix: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]*[A-Za-z0-9]$",
                               description="key prefix of the snapshots (default: etcd/<cluster name>)")
    access_key: SecretRef = Field(default="env:AWS_ACCESS_KEY_ID", description="reference to the access key id")
    secret_key: SecretRef = Field(default="env:AWS_SECRET_ACCESS_KEY", description="reference to the secret access key")

    @property
    def is_oci(self) -> bool:
        """Whether this is OCI Object Storage (counted against the Always Free Object Storage allowance)."""
        return bool(OCI_S3_HOST.match(self.endpoint))


class EtcdBackups(Model):
    """`tierzero backup`: etcd snapshots taken over the Talos API, encrypted to the workspace's age
    key, kept in .tierzero/backups/<cluster>/ or, with `bucket`, in that bucket. With `schedule`, the
    cluster also backs itself up: siderolabs/talos-backup runs as a CronJob from the GitOps tree,
    uploading age-encrypted snapshots (to the same age key) under `<prefix>/scheduled/`."""

    keep: int = Field(default=7, ge=1, le=1000, description="snapshots kept per cluster; after a backup the oldest beyond this are deleted")
    bucket: BackupBucket | None = Field(default=None, description="an S3-compatible bucket for the snapshots instead of the workspace")
    schedule: str | None = Field(default=None, pattern=CRON_PATTERN, description=(
        "a CronJob schedule (five cron fields like '0 3 * * *', or @daily): render siderolabs/talos-backup into the "
        "GitOps tree, uploading to `bucket`"))
    namespace: str = Field(default="talos-backup", pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63,
                           description="the namespace the scheduled backup runs in (Talos API access is allowed from it only)")

    @model_validator(mode="after")
    def _schedule_needs_bucket(self) -> EtcdBackups:
        if self.schedule is not None and self.bucket is None:
            raise ValueError("schedule needs bucket: the scheduled backup (talos-backup) uploads to an S3-compatible bucket; "
                             "add bucket: {bucket, endpoint, region} or remove schedule")
        return self

    def prefix(self, cluster: str) -> str:
        """The key prefix of this cluster's snapshots in the bucket."""
        return (self.bucket.prefix if self.bucket is not None and self.bucket.prefix else f"etcd/{cluster}").strip("/")
