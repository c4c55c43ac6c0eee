"""The S3-compatible state backend end to end: the real binary against an in-process fake S3."""

from __future__ import annotations

import json

import pytest
from fake_s3 import serve

from tierzero.adapters.tofu import StateLockError
from tierzero.adapters.tofu_workspace import S3StateBackend, write_json

ACCESS, SECRET = "AKIAFAKEFAKEFAKEFAKE", "fake-secret-key-do-not-log"


def backend(endpoint: str) -> S3StateBackend:
    return S3StateBackend("state", "tierzero/cloud.tfstate", "eu-frankfurt-1", endpoint, ACCESS, SECRET, max_retries=1)


def test_state_lives_in_the_bucket_with_env_credentials(make_runner) -> None:
    with serve() as (s3, endpoint):
        runner = make_runner("basic")
        write_json(runner.workdir / "tierzero.auto.tfvars.json", {"greeting": "hi"})
        runner.init(backend=backend(endpoint))
        runner.plan_guard_apply(lambda plan: None)

        state = json.loads(s3.objects[("state", "tierzero/cloud.tfstate")])
        assert {r["type"] for r in state["resources"]} == {"terraform_data"}
        assert not (runner.workdir / "terraform.tfstate").exists()
        assert any(f"Credential={ACCESS}/" in auth for auth in s3.authorizations)
        assert any("tierzero/cloud.tfstate.tflock" in r for r in s3.requests if r.startswith("PUT"))
        assert ("state", "tierzero/cloud.tfstate.tflock") not in s3.objects  # released after the run
        logs = "".join(p.read_text() for p in (runner.workdir / ".tierzero-logs").glob("*.log"))
        assert SECRET not in logs and "AWS_SECRET_ACCESS_KEY" in logs


def test_a_lockfile_held_in_the_bucket_is_reported(make_runner) -> None:
    with serve() as (s3, endpoint):
        runner = make_runner("basic")
        write_json(runner.workdir / "tierzero.auto.tfvars.json", {"greeting": "hi"})
        runner.init(backend=backend(endpoint))
        s3.objects[("state", "tierzero/cloud.tfstate.tflock")] = json.dumps(
            {"ID": "3f1c-held", "Operation": "OperationTypeApply", "Who": "bob@ci", "Version": "1.11.4",
             "Created": "2026-11-22T05:00:00Z", "Path": "state/tierzero/cloud.tfstate", "Info": ""}
        ).encode()
        with pytest.raises(StateLockError) as caught:
            runner.plan()
    assert caught.value.lock.id == "3f1c-held" and "bob@ci" in caught.value.message
    assert "force-unlock 3f1c-held" in (caught.value.hint or "")


def test_two_workdirs_share_one_state_and_its_lockfile_on_a_real_s3_api(make_runner, tmp_path) -> None:
    """Against moto's S3 server (a third-party emulator that refuses a conditional write as S3 does): the
    second workdir (another person, or CI) sees the first one's state, and is refused while a lockfile
    exists. Refused because the tool writes the lockfile with If-None-Match: * (Terraform
    internal/backend/remote-state/s3/client.go lockWithFile); an unconditional write would take it."""
    from s3_server import ACCESS_KEY as KEY
    from s3_server import SECRET_KEY as SECRET_
    from s3_server import s3_server

    with s3_server() as s3:
        shared = S3StateBackend(s3.bucket, "team/cloud.tfstate", "eu-frankfurt-1", s3.endpoint, KEY, SECRET_, max_retries=1)
        alice = make_runner("basic", workdir=tmp_path / "alice")
        write_json(alice.workdir / "tierzero.auto.tfvars.json", {"greeting": "hi"})
        alice.init(backend=shared)
        alice.plan_guard_apply(lambda plan: None)
        assert "team/cloud.tfstate" in s3.keys() and "team/cloud.tfstate.tflock" not in s3.keys()  # released after the run

        bob = make_runner("basic", workdir=tmp_path / "bob")
        write_json(bob.workdir / "tierzero.auto.tfvars.json", {"greeting": "hi"})
        bob.init(backend=shared)
        assert bob.plan().changes.is_noop  # alice's resources, from the shared state: nothing to do

        s3.client.put_object(Bucket=s3.bucket, Key="team/cloud.tfstate.tflock", Body=json.dumps(
            {"ID": "9d2e-held", "Operation": "OperationTypeApply", "Who": "alice@laptop", "Version": "1.11.4",
             "Created": "2026-12-01T02:00:00Z", "Path": f"{s3.bucket}/team/cloud.tfstate", "Info": ""}).encode())
        with pytest.raises(StateLockError) as caught:
            bob.plan()
        assert caught.value.lock.id == "9d2e-held" and "alice@laptop" in caught.value.message
