"""WorkspaceSecrets: generated secrets stored encrypted, spec references resolved."""

from __future__ import annotations

import stat

import pytest
import yaml

from tierzero.adapters.redact import Redactor
from tierzero.adapters.sops import SECRET_REGEX, encrypt
from tierzero.engine.step import SecretStore
from tierzero.errors import InputError
from tierzero.workspace import Workspace
from tierzero.workspace.keys import init_workspace
from tierzero.workspace.secrets import WorkspaceSecrets, process_redactor


@pytest.fixture
def store(tmp_path) -> WorkspaceSecrets:
    ws = Workspace(tmp_path / ".tierzero")
    init_workspace(ws)
    return WorkspaceSecrets(ws, tmp_path, environ={"API_TOKEN": "env-value-4711"}, redactor=Redactor())


def test_is_a_secret_store(store):
    import inspect

    for name in ("get_or_create", "get", "put", "resolve"):
        want = list(inspect.signature(getattr(SecretStore, name)).parameters)[1:]
        assert list(inspect.signature(getattr(store, name)).parameters) == want


def test_generated_once_stored_encrypted_and_private(store, tmp_path):
    calls = []

    def generate() -> str:
        calls.append(1)
        return "generated-value-0001"

    assert store.get_or_create("talos/main/bootstrap-token", generate) == "generated-value-0001"
    assert store.get_or_create("talos/main/bootstrap-token", generate) == "generated-value-0001"
    path = tmp_path / ".tierzero/secrets/talos/main/bootstrap-token.sops.yaml"
    assert path.is_file() and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert b"generated-value-0001" not in path.read_bytes() and b"sops:" in path.read_bytes()
    fresh = WorkspaceSecrets(store.workspace, tmp_path)  # a new process: read back from disk
    assert fresh.get_or_create("talos/main/bootstrap-token", generate) == "generated-value-0001"
    assert calls == [1]
    assert fresh.names() == ["talos/main/bootstrap-token"]


def test_put_and_get(store):
    assert store.get("infisical/infisical/client-id") is None
    store.put("infisical/infisical/client-id", "cid-1234")
    assert WorkspaceSecrets(store.workspace, store.base_dir).get("infisical/infisical/client-id") == "cid-1234"
    store.put("infisical/infisical/client-id", "cid-5678")
    assert WorkspaceSecrets(store.workspace, store.base_dir).get("infisical/infisical/client-id") == "cid-5678"
    ref = store.ref("infisical/infisical/client-id")
    assert ref == "sops:.tierzero/secrets/infisical/infisical/client-id.sops.yaml#value"
    assert store.resolve(ref) == "cid-5678"


@pytest.mark.parametrize("name", ["../escape", "a//b", "/abs", "a/../b", "", "sp ace"])
def test_rejects_bad_names(store, name):
    with pytest.raises(InputError):
        store.put(name, "x")


def test_resolve_env(store):
    assert store.resolve("env:API_TOKEN") == "env-value-4711"
    with pytest.raises(InputError) as info:
        store.resolve("env:MISSING_VAR")
    assert "MISSING_VAR" in info.value.message


def test_resolve_file_relative_to_spec_dir(store, tmp_path):
    (tmp_path / "creds").mkdir()
    (tmp_path / "creds" / "token").write_text("file-value-99\n")
    assert store.resolve("file:creds/token") == "file-value-99"
    with pytest.raises(InputError) as info:
        store.resolve("file:creds/nope")
    assert "creds/nope" in info.value.message


def test_resolve_sops_dotted_key(store, tmp_path):
    doc = {"db": {"password": "sops-value-xyz"}, "users": [{"token": "t0-abcdef"}]}
    (tmp_path / "secrets.sops.yaml").write_bytes(encrypt(yaml.safe_dump(doc).encode(), store.recipient()))
    assert store.resolve("sops:secrets.sops.yaml#db.password") == "sops-value-xyz"
    assert store.resolve("sops:secrets.sops.yaml#users[0].token") == "t0-abcdef"
    with pytest.raises(InputError):
        store.resolve("sops:secrets.sops.yaml#db.nope")
    with pytest.raises(InputError):
        store.resolve("sops:missing.sops.yaml#a")


def test_values_are_registered_for_redaction(tmp_path):
    ws = Workspace(tmp_path / ".tierzero")
    init_workspace(ws)
    red = Redactor()
    s = WorkspaceSecrets(ws, tmp_path, environ={"A": "resolved-secret-1"}, redactor=red)
    s.resolve("env:A")
    s.get_or_create("gen", lambda: "generated-secret-2")
    assert red.redact("x resolved-secret-1 y generated-secret-2") == "x *** y ***"
    assert process_redactor() is process_redactor()


def test_missing_age_key_is_an_input_error(tmp_path):
    s = WorkspaceSecrets(Workspace(tmp_path / ".tierzero"), tmp_path)
    with pytest.raises(InputError) as info:
        s.put("a", "b")
    assert "tierzero init" in (info.value.hint or "")


def test_regex_encrypted_files_are_readable_with_sops_refs(store, tmp_path):
    secret = b"apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\nstringData:\n  k: v-123456\n"
    (tmp_path / "s.sops.yaml").write_bytes(encrypt(secret, store.recipient(), encrypted_regex=SECRET_REGEX))
    assert store.resolve("sops:s.sops.yaml#stringData.k") == "v-123456"


def test_distinct_secrets_decrypt_side_by_side_and_one_secret_once(store, tmp_path, monkeypatch):
    """Four threads reading two stored secrets: the two decrypts overlap (each waits, with a
    deadline, until the other has started: one lock for the whole store would time out here),
    and each secret is decrypted once however many threads ask for it."""
    import threading

    from tierzero.workspace import secrets as module

    store.put("a/one", "value-one-0001")
    store.put("a/two", "value-two-0002")
    fresh = WorkspaceSecrets(store.workspace, tmp_path, redactor=Redactor())
    real = module.decrypt
    both = threading.Barrier(2, timeout=20)
    decrypted: list[bytes] = []

    def decrypt(data: bytes, *args, **kwargs) -> bytes:
        decrypted.append(data)
        both.wait()  # BrokenBarrierError when the other never starts beside this one
        return real(data, *args, **kwargs)

    monkeypatch.setattr(module, "decrypt", decrypt)
    got: dict[int, str | None] = {}
    threads = [threading.Thread(target=lambda i=i: got.__setitem__(i, fresh.get("a/one" if i % 2 else "a/two"))) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert got == {0: "value-two-0002", 1: "value-one-0001", 2: "value-two-0002", 3: "value-one-0001"}
    assert len(decrypted) == 2 and not both.broken
    assert fresh.get_or_create("a/one", lambda: "never") == "value-one-0001" and len(decrypted) == 2
