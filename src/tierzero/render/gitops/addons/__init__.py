"""One module per add-on; each turns its spec block into Components."""

from __future__ import annotations

from collections.abc import Callable

from tierzero.render.gitops.addons import (
    alloy,
    cert_manager,
    external_dns,
    infisical,
    ingress_nginx,
    loadbalancer,
    oci_ccm,
    tailscale,
)
from tierzero.render.gitops import talos_backup
from tierzero.render.gitops.component import Component, RenderContext

# Spec key -> builder. Order is the order of Addons' fields, so output is stable.
BUILDERS: dict[str, Callable[[RenderContext], list[Component]]] = {
    "cert_manager": cert_manager.build,
    "tailscale_operator": tailscale.build,
    "oci_ccm": oci_ccm.build,
    "grafana_alloy": alloy.build,
    "metallb": loadbalancer.build,
    "external_dns": external_dns.build,
    "ingress_nginx": ingress_nginx.build,
    "infisical": infisical.build,
}


def components(ctx: RenderContext) -> list[Component]:
    out: list[Component] = []
    for key in ctx.cluster.addons.enabled():
        out.extend(BUILDERS[key](ctx))
    out.extend(talos_backup.build(ctx))  # etcd_backups.schedule: not an add-on, but rendered like one
    names = [c.name for c in out]
    known = set(names)
    for comp in out:
        comp.depends_on = tuple(d for d in comp.depends_on if d in known)
    return out
