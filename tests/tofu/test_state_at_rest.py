"""State and saved plans never rest in plaintext (tierzero.adapters.tofu_state), with the real binary on PATH:
Terraform's files are age-sealed between commands, OpenTofu encrypts them itself (TF_ENCRYPTION)."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pyrage
import pytest

from tierzero.adapters.tofu import TofuBinary, TofuRunner
from tierzero.adapters.tofu_state import StateKey, native_encryption
from tierzero.adapters.tofu_workspace import write_json


def accept(plan_json: object) -> None:
    return None


def make_key() -> StateKey:
    identity = pyrage.x25519.Identity.generate()
    return StateKey(secrets.token_urlsafe(24), str(identity), str(identity.to_public()))


def files_holding(root: Path, needle: str) -> list[str]:
    """Every file under root whose bytes, or a zip member's (saved plans are zip archives), contain needle."""
    found = []
    for path in root.rglob("*"):
        if not path.is_file() or ".plugin-cache" in path.parts or ".terraform" in path.parts:
            continue
        data = path.read_bytes()
        if needle.encode() in data:
            found.append(str(path.relative_to(root)))
        elif zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                found += [f"{path.name}:{m}" for m in archive.namelist() if needle.encode() in archive.read(m)]
    return found


def sealed_state(workdir: Path, key: StateKey) -> dict:
    return json.loads(pyrage.decrypt((workdir / "terraform.tfstate.age").read_bytes(), [pyrage.x25519.Identity.from_str(key.age_identity)]))


def instance_input(state: dict) -> dict:
    (res,) = [r for r in state["resources"] if r["type"] == "terraform_data" and r["name"] == "instance"]
    return res["instances"][0]["attributes"]["input"]["value"]  # terraform_data keeps a dynamic value: {value, type}


@pytest.fixture
def sealed_runner(tofu_binary: TofuBinary, make_runner) -> tuple[TofuRunner, StateKey, str]:
    if native_encryption(tofu_binary.flavor, tofu_binary.version):
        pytest.skip("OpenTofu on PATH encrypts state itself: test_native_encryption_environment covers it")
    key, user_data = make_key(), "machine-config-" + secrets.token_hex(16)
    runner = make_runner("secretstate", state_key=key, env={"TF_VAR_user_data": user_data}, secrets=[user_data])
    write_json(runner.workdir / "tierzero.auto.tfvars.json", {"generation": 1})
    runner.init()
    return runner, key, user_data


def test_terraform_state_backups_and_plans_rest_sealed_and_a_rerun_resumes(sealed_runner) -> None:
    runner, key, user_data = sealed_runner
    workdir = runner.workdir
    plan = runner.plan()
    assert not plan.plan_file.exists() and (workdir / "plan.out.age").is_file()  # sealed between plan and apply
    assert files_holding(workdir, user_data) == []
    runner.apply(plan)
    assert instance_input(sealed_state(workdir, key))["metadata"]["user_data"] == user_data  # it is in the state, sealed

    write_json(workdir / "tierzero.auto.tfvars.json", {"generation": 2})
    _, applied = runner.plan_guard_apply(accept)  # reads the sealed state: the instance updated in place, not created twice
    counts = applied.change_summary
    assert counts is not None and (counts.add, counts.change, counts.remove) == (1, 1, 1)  # `slow` is replaced per generation
    assert runner.output()["generation"] == 2
    names = sorted(p.name for p in workdir.iterdir() if p.is_file())
    assert "terraform.tfstate.age" in names and "terraform.tfstate.backup.age" in names  # the backup Terraform wrote, sealed
    assert not {"terraform.tfstate", "terraform.tfstate.backup", "plan.out", "plan.out.age"} & set(names)
    assert files_holding(workdir, user_data) == []
    assert oct(workdir.stat().st_mode & 0o777) == "0o700" and oct((workdir / "terraform.tfstate.age").stat().st_mode & 0o777) == "0o600"


KILLED_APPLY = """
import json, sys
from pathlib import Path
from tierzero.adapters.tofu import TofuBinary, TofuRunner
from tierzero.adapters.tofu_state import StateKey
a = json.loads(sys.argv[1])
runner = TofuRunner(Path(a["workdir"]), binary=TofuBinary(a["path"], a["flavor"], tuple(a["version"])),
                    plugin_cache_dir=Path(a["cache"]), state_key=StateKey(*a["key"]), env={"TF_VAR_user_data": a["user_data"]})
runner.plan_guard_apply(lambda plan: None)
"""


def test_a_run_killed_mid_apply_leaves_plaintext_the_next_command_seals(sealed_runner, tofu_binary, plugin_cache) -> None:
    """kill -9 of tierzero during an apply: nothing can seal then. The tool (told by the parent-death signal)
    stops and writes what it applied; the next command here takes that plaintext as newest and seals it."""
    runner, key, user_data = sealed_runner
    workdir = runner.workdir
    runner.plan_guard_apply(accept)
    write_json(workdir / "tierzero.auto.tfvars.json", {"generation": 2, "hang": True})
    args = {"workdir": str(workdir), "path": tofu_binary.path, "flavor": tofu_binary.flavor, "version": list(tofu_binary.version),
            "cache": str(plugin_cache), "key": [key.passphrase, key.age_identity, key.age_recipient], "user_data": user_data}
    proc = subprocess.Popen([sys.executable, "-c", KILLED_APPLY, json.dumps(args)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_for(lambda: (workdir / "started").exists() or proc.poll() is not None, "the apply to reach the hanging resource")
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    _wait_for(lambda: not (workdir / ".terraform.tfstate.lock.info").exists(), "the interrupted tool to write its state and unlock")
    leftover = workdir / "terraform.tfstate"
    assert leftover.is_file() and user_data.encode() in leftover.read_bytes()  # the plaintext nothing could seal
    assert instance_input(json.loads(leftover.read_text()))["generation"] == 2  # newer than the sealed copy (generation 1)

    write_json(workdir / "tierzero.auto.tfvars.json", {"generation": 2})
    _, applied = runner.plan_guard_apply(accept)  # the next run resumes from what the killed one wrote:
    counts = applied.change_summary  # the instance is already at generation 2 (no change); only `slow` is finished
    assert counts is not None and counts.change == 0 and counts.add == 1
    assert instance_input(sealed_state(workdir, key))["generation"] == 2
    assert files_holding(workdir, user_data) == []
    assert not (workdir / "terraform.tfstate").exists() and not (workdir / "plan.out").exists()


def _wait_for(condition, what: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
