"""The sops adapter against the real `sops` program."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from tierzero.adapters import sops
from tierzero.adapters.sops import SECRET_REGEX, AgeKey, decrypt, encrypt, encrypt_stable, find_sops, recipients_of
from tierzero.errors import InputError
from tierzero.workspace import Workspace
from tierzero.workspace.keys import create_age_identity

SECRET = b"apiVersion: v1\nkind: Secret\nmetadata:\n  name: demo\n  namespace: default\nstringData:\n  token: s3cr3t-value-123\n"


@pytest.fixture(scope="module")
def age(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, AgeKey]:
    ws = Workspace(tmp_path_factory.mktemp("ws") / ".tierzero")
    ws.root.mkdir()
    return create_age_identity(ws), AgeKey(key_file=ws.age_key)


def test_yaml_secret_encrypts_only_values(age):
    recipient, key = age
    out = encrypt(SECRET, recipient, encrypted_regex=SECRET_REGEX)
    doc = yaml.safe_load(out)
    assert b"s3cr3t-value-123" not in out
    assert doc["metadata"] == {"name": "demo", "namespace": "default"}
    assert doc["stringData"]["token"].startswith("ENC[AES256_GCM,")
    assert recipients_of(out) == ([recipient], SECRET_REGEX)
    assert yaml.safe_load(decrypt(out, key)) == yaml.safe_load(SECRET)


def test_json_and_binary_round_trip(age):
    recipient, key = age
    data = json.dumps({"a": {"b": "value-json-1"}}).encode()
    out = encrypt(data, recipient, fmt="json")
    assert b"value-json-1" not in out
    assert json.loads(decrypt(out, key, fmt="json")) == {"a": {"b": "value-json-1"}}
    blob = bytes(range(256))
    enc = encrypt(blob, recipient, fmt="binary")
    assert recipients_of(enc, "binary")[0] == [recipient]
    assert decrypt(enc, key, fmt="binary") == blob


def test_decrypt_with_key_in_environment(age):
    recipient, key = age
    identity = next(line for line in Path(key.key_file).read_text().splitlines() if line.startswith("AGE-SECRET-KEY-"))
    out = encrypt(SECRET, recipient, encrypted_regex=SECRET_REGEX)
    assert yaml.safe_load(decrypt(out, AgeKey(key=identity)))["stringData"]["token"] == "s3cr3t-value-123"


def test_wrong_key_fails_cleanly(age, tmp_path):
    recipient, _ = age
    other = Workspace(tmp_path / ".tierzero")
    other.root.mkdir()
    create_age_identity(other)
    out = encrypt(SECRET, recipient, encrypted_regex=SECRET_REGEX)
    with pytest.raises(Exception) as info:
        decrypt(out, AgeKey(key_file=other.age_key))
    assert "sops decrypt failed" in str(info.value)
    assert "s3cr3t" not in str(info.value)


def test_stable_encryption_keeps_unchanged_ciphertext(age):
    recipient, key = age
    first = encrypt_stable(SECRET, recipient, key, None, encrypted_regex=SECRET_REGEX)
    again = encrypt_stable(SECRET.replace(b"  name: demo", b"  name: 'demo'"), recipient, key, first, encrypted_regex=SECRET_REGEX)
    assert again is first  # same content, only quoting differs
    changed = encrypt_stable(SECRET.replace(b"s3cr3t", b"n3w"), recipient, key, first, encrypted_regex=SECRET_REGEX)
    assert changed != first
    assert yaml.safe_load(decrypt(changed, key))["stringData"]["token"] == "n3w-value-123"
    # A different regex is a different encryption: never reuse across it.
    whole = encrypt_stable(SECRET, recipient, key, first)
    assert whole != first and recipients_of(whole)[1] is None


def test_stable_encryption_reencrypts_for_a_new_recipient(age, tmp_path):
    recipient, key = age
    first = encrypt(SECRET, recipient, encrypted_regex=SECRET_REGEX)
    other = Workspace(tmp_path / ".tierzero")
    other.root.mkdir()
    new_recipient = create_age_identity(other)
    out = encrypt_stable(SECRET, new_recipient, key, first, encrypted_regex=SECRET_REGEX)
    assert recipients_of(out)[0] == [new_recipient]


def test_rejects_a_non_age_recipient():
    with pytest.raises(InputError):
        encrypt(SECRET, "not-a-recipient")


def test_missing_sops_is_a_clear_error(monkeypatch, tmp_path):
    find_sops.cache_clear()
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(sops, "_wheel_binary", lambda: None)
    try:
        with pytest.raises(InputError) as info:
            find_sops()
        assert "sops" in info.value.message and info.value.hint
    finally:
        find_sops.cache_clear()


def test_finds_sops_next_to_python():
    find_sops.cache_clear()
    path = Path(find_sops())
    assert path.name == "sops" and path.is_file()
