"""An S3 API on loopback for tests: moto's ThreadedMotoServer (moto[server], a third-party AWS
emulator), with a bucket made. It honours If-None-Match: * and If-Match on PutObject with 412
PreconditionFailed, which OpenTofu's use_lockfile and tierzero's shared run lock rely on
(tests/shared_state/test_shared_state.py checks both against it)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

ACCESS_KEY, SECRET_KEY = "AKIATIERZEROTEST0001", "tierzero-test-secret-key-never-logged"
REGION = "eu-frankfurt-1"


@dataclass
class S3Server:
    endpoint: str
    bucket: str
    client: Any  # a boto3 S3 client on the server

    def keys(self) -> list[str]:
        return sorted(o["Key"] for o in self.client.list_objects_v2(Bucket=self.bucket).get("Contents", []))

    def read(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()


@contextmanager
def s3_server() -> Iterator[S3Server]:
    """A started server with a fresh bucket (moto keeps one in-memory store per process: each server's bucket has its own name)."""
    import uuid

    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        client = boto3.session.Session().client("s3", endpoint_url=endpoint, region_name="us-east-1",
                                                aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)
        bucket = f"tierzero-state-{uuid.uuid4().hex[:12]}"
        client.create_bucket(Bucket=bucket)
        yield S3Server(endpoint, bucket, client)
    finally:
        server.stop()


@contextmanager
def enforced_credentials(server: S3Server) -> Iterator[tuple[str, str]]:
    """Make the server check signatures, as every real S3 API does: an IAM user allowed s3:* gets a key pair
    (yielded); any other key is refused (403 InvalidAccessKeyId, or SignatureDoesNotMatch for a wrong secret).
    moto checks credentials only once its process-wide INITIAL_NO_AUTH_ACTION_COUNT is passed (moto
    core/authorization.py); its /moto-api/reset-auth sets that count, and it is set back to "never" on exit."""
    import json
    import uuid

    import boto3
    import requests

    iam = boto3.session.Session().client("iam", endpoint_url=server.endpoint, region_name="us-east-1",
                                         aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)
    user = f"backup-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="s3", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    requests.post(f"{server.endpoint}/moto-api/reset-auth", data=b"0", timeout=10).raise_for_status()
    try:
        yield key["AccessKeyId"], key["SecretAccessKey"]
    finally:
        requests.post(f"{server.endpoint}/moto-api/reset-auth", data=b"inf", timeout=10).raise_for_status()
