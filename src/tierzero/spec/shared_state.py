"""shared_state: where a team keeps the workspace state, the OpenTofu state and the run lock, so two
people (or CI) can run tierzero against one platform."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tierzero.spec.base import Model
from tierzero.spec.refs import SecretRef


class SharedState(Model):
    """An S3-compatible bucket (AWS S3, OCI Object Storage's S3 API, MinIO) that supports conditional
    writes (If-None-Match and If-Match on PutObject: AWS since 2024-08/2024-11, MinIO; OCI's S3 API not
    verified). Each run checks it (tierzero.adapters.shared_state) and refuses a store that ignores them. Credentials are references (env:, file:, sops:), never the keys themselves."""

    type: Literal["s3"] = "s3"
    bucket: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", description="an existing bucket (S3 bucket naming rules)")
    endpoint: str = Field(pattern=r"^https?://[^/\s]+/?$", description="the S3 API URL, like https://NAMESPACE.compat.objectstorage.REGION.oraclecloud.com")
    region: str = Field(min_length=1, description="the region the endpoint signs for (OCI: the region identifier, MinIO: us-east-1)")
    prefix: str = Field(default="tierzero", pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]*[A-Za-z0-9]$",
                        description="key prefix: the lock, the workspace state and cloud.tfstate live under it")
    access_key: SecretRef = Field(default="env:AWS_ACCESS_KEY_ID", description="reference to the access key id")
    secret_key: SecretRef = Field(default="env:AWS_SECRET_ACCESS_KEY", description="reference to the secret access key")
    lease_seconds: int = Field(default=300, ge=30, le=86400, description=(
        "how long the run lock outlives a holder that stopped renewing it (killed, lost its network): another run "
        "may take it over after that; a live holder renews it every third of the lease"))
    wait_minutes: int = Field(default=0, ge=0, le=24 * 60, description="how long a run waits for the lock another run holds (0: fail at once, naming the holder)")
