"""Wiring to the Infisical service: the Infisical operator, or external-secrets with a
ClusterSecretStore (Universal Auth). Credentials come from the secret store once the service
step has created the machine identity; until then only the operator is installed."""

from __future__ import annotations

from tierzero.errors import InputError
from tierzero.render.gitops.component import Component, RenderContext, secret
from tierzero.render.gitops.versions import chart
from tierzero.spec.addons import InfisicalWiring

CREDENTIALS = "infisical-universal-auth"
STORE = "infisical"


def service_url(ctx: RenderContext, name: str) -> str | None:
    for svc in ctx.platform.infisical_services():
        if svc.name == name:
            if svc.ip.address is None:
                return None
            return f"http://{svc.ip.address}:8080"
    raise InputError(f"clusters[{ctx.cluster.name}].addons.infisical.service: no infisical service named {name!r}", hint="name an entry of services[] with kind: infisical")


def credentials(ctx: RenderContext, service: str) -> tuple[str, str] | None:
    client_id = ctx.secrets.get(f"infisical/{service}/client-id")
    client_secret = ctx.secrets.get(f"infisical/{service}/client-secret")
    if client_id and client_secret:
        return client_id, client_secret
    return None


def build(ctx: RenderContext) -> list[Component]:
    spec: InfisicalWiring = ctx.cluster.addons.infisical  # type: ignore[assignment]
    url = service_url(ctx, spec.service)
    creds = credentials(ctx, spec.service)
    if url is None:
        ctx.notes.append(f"infisical: service {spec.service} uses DHCP, so its URL is unknown; the secret store is left out")
    elif creds is None:
        ctx.notes.append(f"infisical: no machine identity for {spec.service} yet (created by deploy); the secret store is left out")
    ready = url is not None and creds is not None
    if spec.mode == "infisical-operator":
        ns = "infisical-operator-system"
        comp = Component(name="infisical-operator", namespace=ns, source=chart("infisical_operator", spec.version), values={"installCRDs": True})
        if ready:
            assert creds is not None
            comp.secrets.append(secret(CREDENTIALS, ns, {"clientId": creds[0], "clientSecret": creds[1]}))
        return [comp]
    ns = "external-secrets"
    comp = Component(name="external-secrets", namespace=ns, source=chart("external_secrets", spec.version), values={"installCRDs": True})
    if ready:
        assert creds is not None and url is not None
        comp.secrets.append(secret(CREDENTIALS, ns, {"clientId": creds[0], "clientSecret": creds[1]}))
        ref = {"name": CREDENTIALS, "namespace": ns}
        comp.configs.append({
            "apiVersion": "external-secrets.io/v1",
            "kind": "ClusterSecretStore",
            "metadata": {"name": STORE},
            "spec": {
                "provider": {
                    "infisical": {
                        "hostAPI": url,
                        "auth": {"universalAuthCredentials": {"clientId": {**ref, "key": "clientId"}, "clientSecret": {**ref, "key": "clientSecret"}}},
                        "secretsScope": {"projectSlug": spec.project_slug, "environmentSlug": spec.environment},
                    }
                }
            },
        })
    return [comp]
