"""OpenTofu's own state and plan encryption as tierzero configures it (TF_ENCRYPTION), and the choices around
it. OpenTofu is not installed here (CI has Terraform): the runner is pointed at a recording executable that
only writes down the environment it was started with, which is the whole of tierzero's part."""

from __future__ import annotations

import json
import secrets
import stat
from pathlib import Path

import hcl2
import pyrage
import pytest

from tierzero.adapters.tofu import TofuBinary, TofuRunner
from tierzero.adapters.tofu_state import (
    MIGRATED_MARKER,
    StateKey,
    encryption_config,
    mark_migrated,
    native_encryption,
    require_protectable,
    seal,
    unsealed,
)
from tierzero.errors import OperationError

RECORDER = """#!/bin/sh
# Writes the TF_ENCRYPTION it was given, one file per call; answers `output -json` with no outputs.
n=$(ls "$RECORD_DIR" | wc -l)
printf '%s' "$TF_ENCRYPTION" > "$RECORD_DIR/call-$n"
[ "$1" = output ] && echo '{}'
exit 0
"""


def make_key() -> StateKey:
    identity = pyrage.x25519.Identity.generate()
    return StateKey(secrets.token_urlsafe(24), str(identity), str(identity.to_public()))


def blocks(config: str) -> dict:
    return hcl2.loads(config)


def test_the_encryption_config_is_hcl_with_pbkdf2_aes_gcm_and_enforced_state_and_plan() -> None:
    key = make_key()
    doc = blocks(encryption_config(key.passphrase, migrate=False))
    assert doc["key_provider"] == [{'"pbkdf2"': {'"tierzero"': {"passphrase": json.dumps(key.passphrase), "__is_block__": True}}}]
    assert doc["method"] == [{'"aes_gcm"': {'"tierzero"': {"keys": "${key_provider.pbkdf2.tierzero}", "__is_block__": True}}}]
    for target in ("state", "plan"):
        (block,) = doc[target]
        assert block["method"] == "${method.aes_gcm.tierzero}" and block["enforced"] is True and "fallback" not in block


def test_migrating_reads_plaintext_state_through_the_documented_fallback_and_writes_aes_gcm() -> None:
    doc = blocks(encryption_config("x" * 32, migrate=True))
    assert {'"unencrypted"': {'"migrate"': {"__is_block__": True}}} in doc["method"]
    (state,) = doc["state"]
    assert state["method"] == "${method.aes_gcm.tierzero}" and "enforced" not in state
    assert state["fallback"][0]["method"] == "${method.unencrypted.migrate}"
    (plan,) = doc["plan"]
    assert plan["enforced"] is True and "fallback" not in plan  # a saved plan is never read unencrypted


def test_a_short_passphrase_is_refused() -> None:
    with pytest.raises(ValueError, match="16 characters"):
        StateKey("too-short", "AGE-SECRET-KEY-1", "age1")


@pytest.mark.parametrize(("flavor", "version", "native"), [
    ("tofu", (1, 7, 0), True), ("tofu", (1, 11, 2), True), ("tofu", (1, 6, 3), False), ("terraform", (1, 11, 4), False)])
def test_only_opentofu_from_1_7_encrypts_natively(flavor: str, version: tuple[int, int, int], native: bool) -> None:
    assert native_encryption(flavor, version) is native


@pytest.fixture
def recorder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[TofuBinary, Path]:
    exe = tmp_path / "bin" / "tofu"
    exe.parent.mkdir()
    exe.write_text(RECORDER)
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    record = tmp_path / "record"
    record.mkdir()
    monkeypatch.setenv("RECORD_DIR", str(record))
    return TofuBinary(str(exe), "tofu", (1, 8, 0)), record


def test_opentofu_gets_the_passphrase_in_tf_encryption_never_in_a_log(recorder, tmp_path: Path) -> None:
    binary, record = recorder
    key = make_key()
    workdir = tmp_path / "work"
    runner = TofuRunner(workdir, binary=binary, state_key=key)
    assert runner.encrypts_natively
    runner.output()
    (given,) = [p.read_text() for p in record.iterdir()]
    assert given == encryption_config(key.passphrase, migrate=True)  # no marker yet: a plaintext state may be there
    logs = "".join(p.read_text() for p in (workdir / ".tierzero-logs").glob("*.log"))
    assert logs and key.passphrase not in logs

    (workdir / "terraform.tfstate").write_text(json.dumps({"serial": 3, "encrypted_data": "c2VhbGVk", "encryption_version": "v0"}))
    assert mark_migrated(workdir) and (workdir / MIGRATED_MARKER).exists()
    runner.output()
    assert (record / "call-1").read_text() == encryption_config(key.passphrase, migrate=False)  # enforced from now on


def test_a_plaintext_local_state_is_not_taken_for_an_encrypted_one(tmp_path: Path) -> None:
    (tmp_path / "terraform.tfstate").write_text(json.dumps({"serial": 1, "resources": []}))
    assert mark_migrated(tmp_path) is False and not (tmp_path / MIGRATED_MARKER).exists()


def test_switching_from_terraform_to_opentofu_hands_it_the_sealed_state_once(recorder, tmp_path: Path) -> None:
    binary, record = recorder
    key = make_key()
    workdir = tmp_path / "work"
    workdir.mkdir()
    state = json.dumps({"serial": 7, "resources": [{"type": "terraform_data"}]})
    (workdir / "terraform.tfstate").write_text(state)
    (workdir / "plan.out").write_bytes(b"PK old plan")
    assert sorted(seal(workdir, key)) == ["plan.out", "terraform.tfstate"]
    TofuRunner(workdir, binary=binary, state_key=key).output()
    assert (workdir / "terraform.tfstate").read_text() == state  # for OpenTofu to read through the fallback
    assert not list(workdir.glob("*.age")) and not (workdir / "plan.out").exists()
    assert "method.unencrypted.migrate" in (record / "call-0").read_text()


def test_terraform_refuses_a_state_opentofu_encrypted_with_the_way_back(tmp_path: Path) -> None:
    (tmp_path / "terraform.tfstate").write_text(json.dumps({"serial": 2, "encrypted_data": "eA==", "encryption_version": "v0"}))
    with pytest.raises(OperationError, match="encrypted by OpenTofu") as refused:
        with unsealed(tmp_path, make_key()):
            pass
    assert "tofu" in (refused.value.hint or "")


def test_secrets_in_a_remote_state_need_opentofu() -> None:
    with pytest.raises(OperationError, match="plaintext in the remote state bucket") as refused:
        require_protectable(native=False, remote_backend=True, holds_secrets=True, tool="terraform")
    assert "OpenTofu >= 1.7" in (refused.value.hint or "") and "type: local" in (refused.value.hint or "")
    require_protectable(native=True, remote_backend=True, holds_secrets=True, tool="tofu")  # encrypted by OpenTofu
    require_protectable(native=False, remote_backend=False, holds_secrets=True, tool="terraform")  # sealed locally
    require_protectable(native=False, remote_backend=True, holds_secrets=False, tool="terraform")  # nothing secret in it
