"""The Tailscale Kubernetes operator, with its OAuth client in the Secret the chart expects."""

from __future__ import annotations

from tierzero.render.gitops.component import PRIVILEGED, Component, RenderContext, secret
from tierzero.render.gitops.versions import chart
from tierzero.spec.addons import TailscaleOperator

NAMESPACE = "tailscale"
OAUTH_SECRET = "operator-oauth"  # the name the chart mounts when no inline credentials are given


def build(ctx: RenderContext) -> list[Component]:
    spec: TailscaleOperator = ctx.cluster.addons.tailscale_operator  # type: ignore[assignment]
    oauth = secret(OAUTH_SECRET, NAMESPACE, {
        "client_id": ctx.secrets.resolve(spec.oauth_client_id),
        "client_secret": ctx.secrets.resolve(spec.oauth_client_secret),
    })
    return [
        Component(
            name="tailscale-operator",
            namespace=NAMESPACE,
            source=chart("tailscale_operator", spec.version),
            values={"operatorConfig": {"hostname": spec.hostname, "defaultTags": list(spec.tags)}},
            depends_on=("cert-manager",),
            namespace_labels=PRIVILEGED,  # its proxy pods configure the network
            secrets=[oauth],
        )
    ]
