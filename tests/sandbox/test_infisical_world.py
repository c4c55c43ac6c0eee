"""The Infisical stand-in persists in the sandbox world: after a restart (or after the first
server was abandoned as a kill -9 leaves it) the instance is still bootstrapped, the admin
password and the machine identity's client id and secret still work, and the document on disk
is encrypted and holds hashes, not the secrets."""

from __future__ import annotations

import json
import stat
from typing import Any

import pytest

from tierzero.adapters.infisical import (
    AlreadySetUp,
    InfisicalClient,
    InfisicalError,
    InvalidCredentials,
)
from tierzero.adapters.connections import RetryPolicies
from tierzero.adapters.retry import Policy
from tierzero.adapters.ssh import close_all, ssh_client
from tierzero.sandbox.harness import Sandbox
from tierzero.sandbox.infisical import InfisicalStandIn
from tierzero.sandbox.infisical import DOCUMENT, InfisicalWorld
from tierzero.sandbox.world import World
from tierzero.spec import Platform

EMAIL, PASSWORD = "you@example.com", "correct horse battery staple"
NETWORK = ["192.168.10.0/24"]




def _client(box: Sandbox, spec: Platform) -> InfisicalClient:
    return InfisicalClient(box.connections.endpoint("infisical", spec.infisical_services()[0].name))


def _set_up(client: InfisicalClient) -> dict[str, Any]:
    """What the services phase does on a fresh instance: returns what the workspace would store."""
    boot = client.bootstrap(EMAIL, PASSWORD, "tierzero")
    org = boot.organization["id"]
    identity = client.create_identity(boot.token, "tierzero-automation", org, "admin")
    ua = client.attach_universal_auth(boot.token, identity["id"], trusted_cidrs=NETWORK, access_token_ttl=3600, access_token_max_ttl=7200)
    secret, _ = client.create_client_secret(boot.token, identity["id"], "tierzero")
    return {"org": org, "identity": identity["id"], "admin_token": boot.token, "client_id": ua["clientId"], "client_secret": secret}


def _sees_instance(client: InfisicalClient, saved: dict[str, Any]) -> None:
    with pytest.raises(AlreadySetUp):
        client.bootstrap(EMAIL, PASSWORD, "tierzero")
    login = client.universal_auth_login(saved["client_id"], saved["client_secret"])
    assert login["tokenType"] == "Bearer"
    with pytest.raises(InvalidCredentials):
        client.universal_auth_login(saved["client_id"], saved["client_secret"][:-1] + "x")
    user = client.login(EMAIL, PASSWORD)
    assert [o["id"] for o in client.organizations(user)] == [saved["org"]]
    with pytest.raises(InvalidCredentials):
        client.login(EMAIL, "wrong password")
    # tokens issued before the restart stay valid, as a real instance's signed tokens do
    names = [i["name"] for i in client.identities(saved["admin_token"], saved["org"])]
    assert sorted(names) == ["Instance Admin Identity", "tierzero-automation"]
    assert client.identities(login["accessToken"], saved["org"])
    ua = client.universal_auth(saved["admin_token"], saved["identity"])
    assert ua is not None and client.trusted_networks(ua["clientSecretTrustedIps"]) == set(NETWORK)


def test_restarted_sandbox_is_still_bootstrapped(spec, ws):
    box = Sandbox(spec, ws)
    box.start(only=["infisical"])
    try:
        saved = _set_up(_client(box, spec))
    finally:
        box.stop()

    again = Sandbox(spec, ws)
    again.start(only=["infisical"])
    try:
        _sees_instance(_client(again, spec), saved)
    finally:
        again.stop()


def test_killed_stand_in_resumes_from_the_file(ws):
    """The first server is never stopped: every answer it gave was preceded by its write."""
    file = World.open(ws).file(DOCUMENT)
    abandoned = InfisicalStandIn().start()
    InfisicalWorld(file).track("infisical", abandoned)
    abandoned.source_ip = "192.168.10.1"
    saved = _set_up(InfisicalClient(abandoned.endpoint()))

    resumed = InfisicalStandIn().start()
    try:
        InfisicalWorld(World.open(ws).file(DOCUMENT)).track("infisical", resumed)
        resumed.source_ip = "192.168.10.1"
        _sees_instance(InfisicalClient(resumed.endpoint()), saved)
    finally:
        resumed.stop()
        abandoned.stop()


def test_interrupted_bootstrap_is_on_disk(ws):
    """The admin call was applied and its answer lost: a restarted instance is set up all the same."""
    file = World.open(ws).file(DOCUMENT)
    first = InfisicalStandIn().start()
    try:
        InfisicalWorld(file).track("infisical", first)
        first.drop_after_bootstrap = True
        with pytest.raises(InfisicalError):  # the answer never came
            InfisicalClient(first.endpoint()).bootstrap(EMAIL, PASSWORD, "tierzero")
    finally:
        first.stop()
    second = InfisicalStandIn().start()
    try:
        InfisicalWorld(World.open(ws).file(DOCUMENT)).track("infisical", second)
        client = InfisicalClient(second.endpoint())
        with pytest.raises(AlreadySetUp):
            client.bootstrap(EMAIL, PASSWORD, "tierzero")
        assert client.login(EMAIL, PASSWORD)
    finally:
        second.stop()


def test_document_is_encrypted_private_and_holds_no_secret(spec, ws):
    box = Sandbox(spec, ws)
    box.start(only=["infisical"])
    try:
        client = _client(box, spec)
        saved = _set_up(client)
        login = client.universal_auth_login(saved["client_id"], saved["client_secret"])
        file = box.world.file(DOCUMENT)
        writes = file.writes
        assert client.ready() and client.identities(saved["admin_token"], saved["org"])
        assert file.writes == writes  # reads are not written
    finally:
        box.stop()

    secrets = [PASSWORD, saved["client_secret"], saved["admin_token"], login["accessToken"]]
    raw = file.path.read_bytes()
    assert raw.startswith(b"age-encryption.org/v1")
    for plain in secrets + [EMAIL, saved["client_id"], "tierzero-automation"]:
        assert plain.encode() not in raw
    assert stat.S_IMODE(file.path.stat().st_mode) == 0o600
    # decrypted, the document is what a real server's database holds: hashes and digests
    doc = file.load()
    assert doc is not None
    text = json.dumps(doc)
    for plain in secrets:
        assert plain not in text
    state = doc["services"][spec.infisical_services()[0].name]
    assert state["initialized"] and state["users"][EMAIL]["passwordHash"].startswith("pbkdf2-sha256$")
    assert all("clientSecretHash" in s for rows in state["client_secrets"].values() for s in rows)


async def test_service_containers_persist_over_ssh(spec, ws):
    """`pct exec` into the service container: Docker installed in run one is there in run two."""
    fast = Policy(base=0.01, cap=0.05, deadline=1.0)
    box = Sandbox(spec, ws)
    conns = box.start(only=["pve-hosts", "infisical"])
    conns.retry = RetryPolicies(default=fast, ssh=fast)
    try:
        ssh = ssh_client(conns, "pve3")
        assert (await ssh.run("pct exec 300 -- sh -c 'docker version'", check=False)).exit_status == 127
        await ssh.run("pct exec 300 -- sh -c 'apt-get install -y docker-ce'")
        await close_all(conns)
    finally:
        box.stop()

    again = Sandbox(spec, ws)
    conns = again.start(only=["pve-hosts", "infisical"])
    conns.retry = RetryPolicies(default=fast, ssh=fast)
    try:
        assert (await ssh_client(conns, "pve3").run("pct exec 300 -- sh -c 'docker version'")).ok
        await close_all(conns)
    finally:
        again.stop()
