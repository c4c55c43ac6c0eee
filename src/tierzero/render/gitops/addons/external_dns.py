"""external-dns: RFC2136 (with a TSIG key) or Cloudflare (with an API token)."""

from __future__ import annotations

from typing import Any

from tierzero.render.gitops.component import Component, RenderContext, secret
from tierzero.render.gitops.versions import chart
from tierzero.spec.addons import ExternalDns

NAMESPACE = "external-dns"
CREDENTIALS = "external-dns-credentials"


def _env(name: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": CREDENTIALS, "key": key}}}


def build(ctx: RenderContext) -> list[Component]:
    spec: ExternalDns = ctx.cluster.addons.external_dns  # type: ignore[assignment]
    values: dict[str, Any] = {
        "sources": ["service", "ingress"],
        "domainFilters": list(spec.domain_filters),
        "policy": "sync",
        "registry": "txt",
        "txtOwnerId": ctx.cluster.name,
    }
    if spec.provider == "rfc2136":
        rfc = spec.rfc2136
        assert rfc is not None  # the spec model guarantees it
        creds = {"tsig-secret": ctx.secrets.resolve(rfc.tsig_secret)}
        values["provider"] = {"name": "rfc2136"}
        values["env"] = [_env("EXTERNAL_DNS_RFC2136_TSIG_SECRET", "tsig-secret")]
        values["extraArgs"] = [
            f"--rfc2136-host={rfc.host}",
            f"--rfc2136-port={rfc.port}",
            f"--rfc2136-zone={rfc.zone}",
            f"--rfc2136-tsig-keyname={rfc.tsig_keyname}",
            f"--rfc2136-tsig-secret-alg={rfc.tsig_algorithm}",
            "--rfc2136-tsig-axfr",
        ]
    else:
        assert spec.cloudflare_api_token is not None
        creds = {"api-token": ctx.secrets.resolve(spec.cloudflare_api_token)}
        values["provider"] = {"name": "cloudflare"}
        values["env"] = [_env("CF_API_TOKEN", "api-token")]
    return [
        Component(
            name="external-dns",
            namespace=NAMESPACE,
            source=chart("external_dns", spec.version),
            values=values,
            secrets=[secret(CREDENTIALS, NAMESPACE, creds)],
        )
    ]
