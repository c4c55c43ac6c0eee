"""cert-manager with its CRDs, and a Let's Encrypt ClusterIssuer (HTTP-01, or DNS-01 via Cloudflare)."""

from __future__ import annotations

from typing import Any

from tierzero.render.gitops.component import Component, RenderContext, secret
from tierzero.render.gitops.versions import chart
from tierzero.spec.addons import CertManager

NAMESPACE = "cert-manager"
ACME = {
    "production": "https://acme-v02.api.letsencrypt.org/directory",
    "staging": "https://acme-staging-v02.api.letsencrypt.org/directory",
}
CLOUDFLARE_SECRET = "cloudflare-api-token"


def issuer_name(spec: CertManager) -> str:
    return f"letsencrypt-{spec.acme_server}"


def build(ctx: RenderContext) -> list[Component]:
    spec: CertManager = ctx.cluster.addons.cert_manager  # type: ignore[assignment]
    config_secrets = []
    if spec.cloudflare_api_token:
        token = ctx.secrets.resolve(spec.cloudflare_api_token)
        config_secrets.append(secret(CLOUDFLARE_SECRET, NAMESPACE, {"api-token": token}))
        solver: dict[str, Any] = {
            "dns01": {"cloudflare": {"apiTokenSecretRef": {"name": CLOUDFLARE_SECRET, "key": "api-token"}}},
        }
        if spec.dns_zones:
            solver["selector"] = {"dnsZones": list(spec.dns_zones)}
    else:
        solver = {"http01": {"ingress": {"ingressClassName": "nginx"}}}
    issuer = {
        "apiVersion": "cert-manager.io/v1",
        "kind": "ClusterIssuer",
        "metadata": {"name": issuer_name(spec)},
        "spec": {
            "acme": {
                "email": spec.acme_email,
                "server": ACME[spec.acme_server],
                "privateKeySecretRef": {"name": f"{issuer_name(spec)}-account-key"},
                "solvers": [solver],
            }
        },
    }
    return [
        Component(
            name="cert-manager",
            namespace=NAMESPACE,
            source=chart("cert_manager", spec.version),
            values={"crds": {"enabled": True, "keep": True}},
            configs=[issuer],
            config_secrets=config_secrets,
        )
    ]
