"""Phase "services": per Infisical service, an LXC on its Proxmox node, the Docker stack inside it,
then the instance bootstrap and an automation machine identity with Universal Auth.

Every step looks up before it creates and keeps generated secrets in `ctx.secrets`, so a re-run
adopts what exists, and a run cut off anywhere resumes from what is there.
"""

from __future__ import annotations

import asyncio
import ipaddress
import shlex
import time
from typing import TYPE_CHECKING, Any, Mapping

from tierzero.adapters.connections import Endpoint
from tierzero.adapters.infisical import AlreadySetUp, InfisicalClient, InvalidCredentials
from tierzero.engine.step import Step, StepContext
from tierzero.errors import OperationError
from tierzero.phases.hosts import host_ssh
from tierzero.phases.services_lxc import destroy_lxc, ensure_lxc
from tierzero.render.remote_files import write_file_script
from tierzero.render.services import infisical as render

if TYPE_CHECKING:
    from tierzero.spec import Platform
    from tierzero.spec.services import Infisical

READY_TIMEOUT = 900.0  # first start pulls three images and runs Infisical's migrations
POLL_INTERVAL = 3.0
AUTOMATION_ROLE = "admin"  # the automation identity creates projects and grants access to them
ACCESS_TOKEN_TTL = 3600
ACCESS_TOKEN_MAX_TTL = 86400


def steps(spec: "Platform") -> list[Step]:
    out: list[Step] = []
    for svc in spec.infisical_services():
        lxc, stack, boot = (f"services/{kind}/{svc.name}" for kind in ("lxc", "stack", "bootstrap"))
        out += [
            Step(lxc, "services", f"LXC {svc.vmid} for {svc.name} on {svc.node}", _bind(_run_lxc, svc),
                 inputs=_bind_inputs(_lxc_inputs, svc), destroy=_bind(destroy_lxc, svc)),
            Step(stack, "services", f"Docker, PostgreSQL, Redis and Infisical in LXC {svc.vmid}", _bind(_run_stack, svc, lxc),
                 inputs=_bind_inputs(_stack_inputs, svc), needs=(lxc,)),
            Step(boot, "services", f"bootstrap Infisical {svc.name} and its automation identity", _bind(_run_bootstrap, svc, stack),
                 inputs=_bind_inputs(_bootstrap_inputs, svc), needs=(stack,)),
        ]
    return out


def _bind(fn: Any, *args: Any) -> Any:
    async def run(ctx: StepContext, inputs: Any = None) -> Mapping[str, Any]:
        return await fn(ctx, *args)
    return run


def _bind_inputs(fn: Any, svc: "Infisical") -> Any:
    return lambda ctx: fn(ctx, svc)


def _lxc_inputs(ctx: StepContext, svc: "Infisical") -> dict[str, Any]:
    px = ctx.spec.proxmox
    return {"svc": svc.model_dump(mode="json"), "storage": px.storage, "image_storage": px.image_storage,
            "bridge": px.bridge, "vlan": px.vlan, "gateway": px.gateway, "nameservers": list(px.nameservers)}


def _stack_inputs(ctx: StepContext, svc: "Infisical") -> dict[str, Any]:
    return {"version": svc.infisical_version, "vmid": svc.vmid, "node": svc.node, "compose": render.compose_file(svc)}


def _bootstrap_inputs(ctx: StepContext, svc: "Infisical") -> dict[str, Any]:
    return {"email": svc.admin_email, "organization": svc.organization, "trusted": trusted_cidrs(ctx.spec),
            "role": AUTOMATION_ROLE, "ttl": [ACCESS_TOKEN_TTL, ACCESS_TOKEN_MAX_TTL]}


def trusted_cidrs(spec: "Platform") -> list[str]:
    """Where the automation identity may log in from and use its tokens: the admin networks, and the
    Proxmox network the clusters (and so their secret operators) live on."""
    cidrs = list(spec.oci.network.admin_cidrs) if spec.oci else []
    if spec.proxmox.network not in cidrs:
        cidrs.append(spec.proxmox.network)
    return cidrs


def secret_ref(ctx: StepContext, name: str) -> str:
    """How outputs point at a stored secret, never carrying its value."""
    ref = getattr(ctx.secrets, "ref", None)  # WorkspaceSecrets.ref; a bare SecretStore has none
    return str(ref(name)) if callable(ref) else f"sops:.tierzero/secrets/{name}.sops.yaml#value"


# ---------------------------------------------------------------------------- LXC


async def _run_lxc(ctx: StepContext, svc: "Infisical") -> Mapping[str, Any]:
    return await ensure_lxc(ctx, svc)


# ---------------------------------------------------------------------------- stack


def stack_secrets(ctx: StepContext, svc: "Infisical") -> render.StackSecrets:
    get = ctx.secrets.get_or_create
    return render.StackSecrets(
        db_password=get(render.secret_name(svc.name, "db-password"), render.new_db_password),
        encryption_key=get(render.secret_name(svc.name, "encryption-key"), render.new_encryption_key),
        auth_secret=get(render.secret_name(svc.name, "auth-secret"), render.new_auth_secret),
    )


def api_endpoint(ctx: StepContext, svc: "Infisical", address: str) -> Endpoint:
    default = Endpoint(host=address, port=render.API_PORT, scheme="http", verify=False)
    return ctx.connections.endpoint("infisical", svc.name, default=default)


async def _in_ct(ctx: StepContext, svc: "Infisical", script: str, *, check: bool = True, input: str | None = None,
                 secrets: tuple[str, ...] = (), timeout: float = 1800) -> Any:
    # Scripts never hold secrets: those travel on stdin, and are declared so any echo is masked.
    shell = host_ssh(ctx, svc.node)
    return await shell.run(f"pct exec {svc.vmid} -- sh -c {shlex.quote(script)}", check=check, input=input,
                           secrets=secrets, timeout=timeout)


async def _run_stack(ctx: StepContext, svc: "Infisical", lxc_step: str) -> Mapping[str, Any]:
    address = str(ctx.output(lxc_step)["address"])
    endpoint = api_endpoint(ctx, svc, address)
    site_url = f"http://{address}:{render.API_PORT}"
    stack = stack_secrets(ctx, svc)

    docker = await _in_ct(ctx, svc, render.DOCKER_PRESENT, check=False, timeout=60)
    if docker.exit_status == 0:
        ctx.log(f"Docker already present in LXC {svc.vmid}")
    else:
        ctx.log(f"installing Docker in LXC {svc.vmid}")
        await _in_ct(ctx, svc, render.DOCKER_INSTALL)

    compose = render.compose_file(svc)
    rendered = ctx.workspace.render_dir / "services" / svc.name / "docker-compose.yml"
    rendered.parent.mkdir(parents=True, exist_ok=True)
    rendered.write_text(compose)
    await _in_ct(ctx, svc, write_file_script(f"{render.STACK_DIR}/docker-compose.yml", "0644"), input=compose)
    await _in_ct(ctx, svc, write_file_script(f"{render.STACK_DIR}/.env", "0600"),
                 input=render.env_file(svc, stack, site_url), secrets=stack.values())
    await _in_ct(ctx, svc, render.compose_up_script(), secrets=stack.values())

    client = InfisicalClient(endpoint)
    try:
        await wait_ready(ctx, client, endpoint.url)
    finally:
        client.close()
    # The address, not the endpoint reached: through the bastion that is a local forward of this run only.
    url = f"http://{endpoint.extra['behind']}" if endpoint.extra.get("behind") else endpoint.url
    return {"url": url, "site_url": site_url, "compose_file": str(rendered), "stack_dir": render.STACK_DIR,
            "secrets": {k: secret_ref(ctx, render.secret_name(svc.name, k)) for k in ("db-password", "encryption-key", "auth-secret")}}


async def wait_ready(ctx: StepContext, client: InfisicalClient, url: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    ctx.wait(f"{url}/api/status to answer 200")
    while not await asyncio.to_thread(client.ready):
        if time.monotonic() > deadline:
            raise OperationError(f"Infisical at {url} did not become ready within {int(READY_TIMEOUT)} s",
                                 hint=f"look at `docker compose logs backend` in {render.STACK_DIR} inside the LXC")
        await asyncio.sleep(POLL_INTERVAL)


# ---------------------------------------------------------------------------- bootstrap


def automation_identity_name(svc: "Infisical") -> str:
    return f"tierzero-{svc.name}-automation"


async def _run_bootstrap(ctx: StepContext, svc: "Infisical", stack_step: str) -> Mapping[str, Any]:
    endpoint = ctx.connections.endpoint("infisical", svc.name, default=_endpoint_from_url(ctx.output(stack_step)["url"]))
    client = InfisicalClient(endpoint)
    try:
        return await _bootstrap(ctx, svc, client, endpoint.url)
    finally:
        client.close()


def _endpoint_from_url(url: str) -> Endpoint:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return Endpoint(host=parts.hostname or "", port=parts.port or 80, scheme=parts.scheme, verify=False)


async def _bootstrap(ctx: StepContext, svc: "Infisical", client: InfisicalClient, url: str) -> Mapping[str, Any]:
    call = asyncio.to_thread
    # Stored before the admin call, so a run cut off right after it can still log in.
    password = ctx.secrets.get_or_create(render.secret_name(svc.name, "admin-password"), render.new_admin_password)
    try:
        boot = await call(client.bootstrap, svc.admin_email, password, svc.organization)
        org, token, how = boot.organization, boot.token, "bootstrapped"
        ctx.log(f"bootstrapped Infisical {svc.name}: admin {svc.admin_email}, organization {org['name']!r}")
    except AlreadySetUp:
        ctx.log(f"Infisical {svc.name} is already set up: logging in as {svc.admin_email} to adopt it")
        user_token = await call(client.login, svc.admin_email, password)
        org = _pick_org(await call(client.organizations, user_token), svc)
        token = await call(client.select_organization, user_token, org["id"])
        how = "adopted"

    name = automation_identity_name(svc)
    found = [i for i in await call(client.identities, token, org["id"]) if i.get("name") == name]
    if found:
        identity = found[0]
        ctx.log(f"machine identity {name} exists ({identity['id']})")
    else:
        identity = await call(client.create_identity, token, name, org["id"], AUTOMATION_ROLE)
        ctx.log(f"created machine identity {name} ({identity['id']})")

    ua = await call(client.universal_auth, token, identity["id"])
    trusted = trusted_cidrs(ctx.spec)
    def attach(update: bool) -> dict[str, Any]:
        return client.attach_universal_auth(token, identity["id"], trusted_cidrs=trusted, access_token_ttl=ACCESS_TOKEN_TTL,
                                            access_token_max_ttl=ACCESS_TOKEN_MAX_TTL, update=update)

    if ua is None:
        ua = await call(attach, False)
        ctx.log(f"attached Universal Auth to {name}, trusted from {', '.join(trusted)}")
    elif _ua_drifted(ua, trusted):
        ua = await call(attach, True)
        ctx.log(f"updated Universal Auth of {name} to the spec: trusted from {', '.join(trusted)}")
    client_id = str(ua["clientId"])
    id_name, secret_name = render.secret_name(svc.name, "client-id"), render.secret_name(svc.name, "client-secret")
    if ctx.secrets.get(id_name) != client_id:
        ctx.secrets.put(id_name, client_id)

    stored = ctx.secrets.get(secret_name)
    if stored is not None:
        try:
            await call(client.universal_auth_login, client_id, stored)
            ctx.log(f"stored client secret of {name} still logs in")
        except InvalidCredentials:
            ctx.log(f"stored client secret of {name} is refused (revoked or from another instance): creating a new one", level="warn")
            stored = None
    if stored is None:
        secret, data = await call(client.create_client_secret, token, identity["id"], f"tierzero {ctx.spec.metadata.name}")
        ctx.secrets.put(secret_name, secret)  # at once: a crash after this keeps the secret usable
        ctx.log(f"created client secret {data.get('clientSecretPrefix', '')}… for {name}")
        await call(client.universal_auth_login, client_id, secret)
        ctx.log(f"Universal Auth login of {name} works")

    return {
        "url": url, "result": how, "admin_email": svc.admin_email,
        "organization_id": org["id"], "organization_slug": org.get("slug", ""),
        "identity_id": identity["id"], "identity_name": name,
        "admin_password": secret_ref(ctx, render.secret_name(svc.name, "admin-password")),
        "client_id": secret_ref(ctx, id_name), "client_secret": secret_ref(ctx, secret_name),
    }


def _ua_drifted(ua: Mapping[str, Any], trusted: list[str]) -> bool:
    want = {str(ipaddress.ip_network(c)) for c in trusted}
    nets = InfisicalClient.trusted_networks
    return (nets(ua.get("clientSecretTrustedIps", [])) != want or nets(ua.get("accessTokenTrustedIps", [])) != want
            or ua.get("accessTokenTTL") != ACCESS_TOKEN_TTL or ua.get("accessTokenMaxTTL") != ACCESS_TOKEN_MAX_TTL)


def _pick_org(orgs: list[dict[str, Any]], svc: "Infisical") -> dict[str, Any]:
    named = [o for o in orgs if o.get("name") == svc.organization]
    if named:
        return named[0]
    if len(orgs) == 1:
        return orgs[0]  # renamed in the UI since the bootstrap: still the instance's organization
    raise OperationError(f"cannot adopt Infisical {svc.name}: its admin belongs to {len(orgs)} organizations and none is named {svc.organization!r}",
                         hint="set services[].organization to the organization's current name")


__all__ = ["steps", "trusted_cidrs", "automation_identity_name", "READY_TIMEOUT", "POLL_INTERVAL"]
