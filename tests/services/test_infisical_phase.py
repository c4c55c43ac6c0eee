from __future__ import annotations

import json
import re

import pytest

from tierzero.adapters.infisical import InfisicalClient, InfisicalError, InvalidCredentials
from tierzero.errors import OperationError
from tierzero.phases import services as phase

LXC, STACK, BOOT = "services/lxc/infisical", "services/stack/infisical", "services/bootstrap/infisical"


def _steps(harness):  # the stack and bootstrap steps, with the LXC step's output in place
    harness.outputs[LXC] = {"node": "pve3", "vmid": 300, "hostname": "infisical", "address": "192.168.10.30", "created": True}
    by_id = {s.id: s for s in phase.steps(harness.spec)}
    return [by_id[STACK], by_id[BOOT]]


def test_steps_chain_per_service(spec):
    steps = phase.steps(spec)
    assert [s.id for s in steps] == [LXC, STACK, BOOT]
    assert {s.phase for s in steps} == {"services"}
    assert steps[1].needs == (LXC,) and steps[2].needs == (STACK,)


async def test_fresh_bootstrap(harness, standin):
    await harness.run_all(_steps(harness))
    out, sec = harness.outputs[BOOT], harness.secrets.values

    assert out["result"] == "bootstrapped"
    assert out["client_id"] == "sops:.tierzero/secrets/infisical/infisical/client-id.sops.yaml#value"
    assert out["client_secret"].startswith("sops:") and sec["infisical/infisical/client-secret"] not in json.dumps(out)
    assert re.fullmatch(r"[0-9a-f]{32}", sec["infisical/infisical/encryption-key"])

    # the stack: Docker installed, compose and a 0600 .env written inside the container
    files = harness.shell.files
    assert files["/opt/tierzero/infisical/.env"][0] == "0600"
    assert files["/opt/tierzero/infisical/docker-compose.yml"][0] == "0644"
    env = files["/opt/tierzero/infisical/.env"][1]
    assert f"ENCRYPTION_KEY={sec['infisical/infisical/encryption-key']}\n" in env
    assert f"AUTH_SECRET={sec['infisical/infisical/auth-secret']}\n" in env
    assert any("apt-get install" in r.command for r in harness.shell.ran)

    # the identity: created once, Universal Auth limited to the spec's network, stored secret logs in
    ident = [i for i in standin.state.identities.values() if i["name"] == "tierzero-infisical-automation"]
    assert len(ident) == 1 and ident[0]["role"] == "admin"
    ua = standin.state.universal_auth[ident[0]["id"]]
    assert ua["clientSecretTrustedIps"] == [{"ipAddress": "192.168.10.0", "prefix": 24, "type": "ipv4"}]
    assert ua["accessTokenTrustedIps"] == ua["clientSecretTrustedIps"]
    assert 0 < ua["accessTokenTTL"] <= ua["accessTokenMaxTTL"] < 2592000
    client = InfisicalClient(standin.endpoint())
    login = client.universal_auth_login(sec["infisical/infisical/client-id"], sec["infisical/infisical/client-secret"])
    assert login["tokenType"] == "Bearer"


async def test_rerun_adopts_without_change(harness, standin):
    await harness.run_all(_steps(harness))
    before = dict(harness.secrets.values)
    identities = set(standin.state.identities)
    standin.calls.clear()
    harness.shell.ran.clear()

    await harness.run_all(_steps(harness))

    assert harness.outputs[BOOT]["result"] == "adopted"
    assert harness.secrets.values == before
    assert set(standin.state.identities) == identities
    assert sum(len(v) for v in standin.state.client_secrets.values()) == 1
    posted = {p for m, p in standin.calls if m == "POST"}
    assert "/api/v1/identities" not in posted
    assert not any(p.endswith("/client-secrets") for p in posted)
    assert not any(re.fullmatch(r"/api/v1/auth/universal-auth/identities/[0-9a-f-]+", p) for p in posted)
    assert not any("apt-get install" in r.command for r in harness.shell.ran)  # Docker is there now


async def test_bootstrap_interrupted_after_admin_call_resumes(harness, standin):
    stack, boot = _steps(harness)
    await harness.run(stack)
    standin.drop_after_bootstrap = True
    with pytest.raises(InfisicalError):
        await harness.run(boot)
    assert standin.state.initialized  # the admin call went through, its answer was lost
    assert "infisical/infisical/admin-password" in harness.secrets.values

    await harness.run(boot)

    assert harness.outputs[BOOT]["result"] == "adopted"
    names = [i["name"] for i in standin.state.identities.values()]
    assert names.count("tierzero-infisical-automation") == 1
    assert harness.outputs[BOOT]["organization_id"] in standin.state.orgs


async def test_wrong_admin_password_fails_clearly(harness, standin):
    await harness.run_all(_steps(harness))
    harness.secrets.values["infisical/infisical/admin-password"] = "not-the-password"
    with pytest.raises(InvalidCredentials) as err:
        await harness.run(_steps(harness)[1])
    text = "\n".join(err.value.lines())
    assert "admin login failed (401)" in text and "you@example.com" in text and "stored admin password" in text
    assert "not-the-password" not in text


async def test_revoked_client_secret_is_replaced(harness, standin):
    await harness.run_all(_steps(harness))
    for rows in standin.state.client_secrets.values():
        for row in rows:
            row["isClientSecretRevoked"] = True
    old = harness.secrets.values["infisical/infisical/client-secret"]
    await harness.run(_steps(harness)[1])
    assert harness.secrets.values["infisical/infisical/client-secret"] != old


async def test_ready_timeout_is_a_clear_error(harness, standin, monkeypatch):
    monkeypatch.setattr(phase, "READY_TIMEOUT", 0.05)
    standin.unready_polls = 10_000
    with pytest.raises(OperationError, match="did not become ready"):
        await harness.run(_steps(harness)[0])


async def test_status_waits_until_ready(harness, standin):
    standin.unready_polls = 3
    await harness.run(_steps(harness)[0])
    assert standin.unready_polls == 0
    assert any(kind == "wait" for kind, _ in harness.events)


async def test_no_secret_value_in_logs_events_outputs_or_render(harness, standin, capture_logs):
    standin.drop_after_bootstrap = True  # also exercise the failure and resume paths
    steps = _steps(harness)
    await harness.run(steps[0])
    with pytest.raises(InfisicalError) as first:
        await harness.run(steps[1])
    await harness.run(steps[1])
    harness.secrets.values["infisical/infisical/admin-password"], real = "wrong-password-123", harness.secrets.values["infisical/infisical/admin-password"]
    with pytest.raises(InvalidCredentials) as second:
        await harness.run(steps[1])
    harness.secrets.values["infisical/infisical/admin-password"] = real

    secrets = [v for v in harness.secrets.values.values() if len(v) >= 8]
    secrets += [v for v in harness.secrets.values.values() if v == "wrong-password-123"]
    assert len(secrets) >= 6
    rendered = "".join(p.read_text() for p in harness.workspace.render_dir.rglob("*") if p.is_file())
    haystacks = {
        "events": repr(harness.events),
        "logs": capture_logs.text + repr([r.args for r in capture_logs.records]),
        "outputs": json.dumps(harness.outputs),
        "errors": "\n".join(first.value.lines() + second.value.lines()),
        "render": rendered,
        "commands": "\n".join(r.command for r in harness.shell.ran),
    }
    for where, text in haystacks.items():
        for value in secrets:
            if value == harness.secrets.values.get("infisical/infisical/client-id"):
                continue  # a client id is an identifier, not a secret
            assert value not in text, f"a secret value leaked into {where}"
    # the secrets did reach the container, but only on stdin and declared for masking
    env_writes = [r for r in harness.shell.ran if r.input and "ENCRYPTION_KEY" in r.input]
    assert env_writes and all(harness.secrets.values["infisical/infisical/db-password"] in r.secrets for r in env_writes)


async def test_with_the_workspace_secret_store(harness, standin):
    from tierzero.workspace.keys import create_age_identity
    from tierzero.workspace.secrets import WorkspaceSecrets

    create_age_identity(harness.workspace)
    harness.secrets = WorkspaceSecrets(harness.workspace)
    await harness.run_all(_steps(harness))
    out = harness.outputs[BOOT]
    assert out["client_secret"] == "sops:.tierzero/secrets/infisical/infisical/client-secret.sops.yaml#value"
    stored = harness.workspace.secrets_dir / "infisical/infisical/client-secret.sops.yaml"
    value = harness.secrets.get("infisical/infisical/client-secret")
    assert stored.exists() and value and value not in stored.read_text()
    assert (stored.stat().st_mode & 0o777) == 0o600
    await harness.run(_steps(harness)[1])
    assert harness.outputs[BOOT]["result"] == "adopted"
    assert WorkspaceSecrets(harness.workspace).get("infisical/infisical/client-secret") == value


async def test_universal_auth_drift_is_put_back_to_the_spec(harness, standin):
    await harness.run_all(_steps(harness))
    (ua,) = standin.state.universal_auth.values()
    ua["clientSecretTrustedIps"] = [{"ipAddress": "0.0.0.0", "prefix": 0, "type": "ipv4"}]
    ua["accessTokenTTL"] = 2592000
    ua["accessTokenMaxTTL"] = 2592000
    standin.calls.clear()
    await harness.run(_steps(harness)[1])
    assert ("PATCH", f"/api/v1/auth/universal-auth/identities/{ua['identityId']}") in standin.calls
    assert ua["clientSecretTrustedIps"] == [{"ipAddress": "192.168.10.0", "prefix": 24, "type": "ipv4"}]
    assert ua["accessTokenTTL"] == phase.ACCESS_TOKEN_TTL
    standin.calls.clear()
    await harness.run(_steps(harness)[1])
    assert not any(m == "PATCH" for m, _ in standin.calls)


async def test_an_infisical_without_the_bootstrap_api_is_named(harness, standin, monkeypatch):
    from tierzero.sandbox.infisical import server as sandbox

    monkeypatch.setattr(sandbox, "ROUTES", [r for r in sandbox.ROUTES if r[2] != "bootstrap"])
    with pytest.raises(InfisicalError) as err:
        await harness.run_all(_steps(harness))
    assert "admin bootstrap failed (404)" in err.value.message and "infisical_version" in (err.value.hint or "")
