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
