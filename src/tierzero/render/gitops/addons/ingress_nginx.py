"""ingress-nginx; on OCI its LoadBalancer Service asks for a flexible LB held at 10 Mbps (free)."""

from __future__ import annotations

from typing import Any

from tierzero.render.gitops.component import Component, RenderContext
from tierzero.render.gitops.versions import chart
from tierzero.spec.addons import IngressNginx

NAMESPACE = "ingress-nginx"
OCI_LB = "service.beta.kubernetes.io/oci-load-balancer-"


def oci_lb_annotations(ctx: RenderContext) -> dict[str, str]:
    """Annotations that keep an OCI load balancer within the Always Free allowance."""
    out = {
        f"{OCI_LB}shape": "flexible",
        f"{OCI_LB}shape-flex-min": "10",
        f"{OCI_LB}shape-flex-max": "10",
    }
    ccm = ctx.cluster.addons.oci_ccm
    subnet = (ccm.load_balancer_subnet if ccm else None) or ctx.facts.get("subnet_ocid")
    if subnet:
        out[f"{OCI_LB}subnet1"] = subnet
    return out


def build(ctx: RenderContext) -> list[Component]:
    spec: IngressNginx = ctx.cluster.addons.ingress_nginx  # type: ignore[assignment]
    service: dict[str, Any] = {"type": spec.service_type}
    if ctx.enabled("oci_ccm") and spec.service_type == "LoadBalancer":
        service["annotations"] = oci_lb_annotations(ctx)
    values = {
        "controller": {
            "ingressClassResource": {"name": "nginx", "default": spec.default_class},
            "service": service,
            "metrics": {"enabled": True},
        }
    }
    depends = ("oci-cloud-controller-manager", "metallb") if spec.service_type == "LoadBalancer" else ()
    return [Component(name="ingress-nginx", namespace=NAMESPACE, source=chart("ingress_nginx", spec.version), values=values, depends_on=depends)]
