"""LoadBalancer addresses: MetalLB (IPAddressPool + L2Advertisement) or Cilium LB-IPAM with L2
announcements (CiliumLoadBalancerIPPool + CiliumL2AnnouncementPolicy)."""

from __future__ import annotations

import re
from typing import Any

from tierzero.render.gitops.component import PRIVILEGED, Component, ConfigOnly, Manifest, RenderContext
from tierzero.render.gitops.versions import chart
from tierzero.spec.addons import MetalLB

POOL = "default"
_IFACE_NAME = re.compile(r"^[A-Za-z0-9._-]+$")


def cilium_blocks(addresses: list[str]) -> list[dict[str, str]]:
    blocks = []
    for entry in addresses:
        if "-" in entry and "/" not in entry:
            start, stop = (s.strip() for s in entry.split("-", 1))
            blocks.append({"start": start, "stop": stop})
        else:
            blocks.append({"cidr": entry.strip()})
    return blocks


def cilium_resources(spec: MetalLB) -> list[Manifest]:
    pool = {
        "apiVersion": "cilium.io/v2",
        "kind": "CiliumLoadBalancerIPPool",
        "metadata": {"name": POOL},
        "spec": {"blocks": cilium_blocks(spec.addresses)},
    }
    policy = {
        "apiVersion": "cilium.io/v2alpha1",
        "kind": "CiliumL2AnnouncementPolicy",
        "metadata": {"name": POOL},
        "spec": {"loadBalancerIPs": True, "interfaces": list(spec.interfaces)},
    }
    return [pool, policy]


def metallb_resources(spec: MetalLB) -> list[Manifest]:
    pool = {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "IPAddressPool",
        "metadata": {"name": POOL, "namespace": "metallb-system"},
        "spec": {"addresses": list(spec.addresses)},
    }
    l2: dict[str, Any] = {"ipAddressPools": [POOL]}
    # MetalLB takes literal interface names; the spec's default is a regex meant for Cilium.
    names = [i for i in spec.interfaces if _IFACE_NAME.match(i)]
    if names:
        l2["interfaces"] = names
    advert = {"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement", "metadata": {"name": POOL, "namespace": "metallb-system"}, "spec": l2}
    return [pool, advert]


def build(ctx: RenderContext) -> list[Component]:
    spec: MetalLB = ctx.cluster.addons.metallb  # type: ignore[assignment]
    if spec.implementation == "cilium":
        # Cilium itself is installed at first boot (see cilium.py): only the pool and policy here.
        return [Component(name="cilium-lb-ipam", namespace="kube-system", source=ConfigOnly(), create_namespace=False, configs=cilium_resources(spec))]
    return [
        Component(
            name="metallb",
            namespace="metallb-system",
            source=chart("metallb", spec.version),
            namespace_labels=PRIVILEGED,  # the speaker uses the host network
            configs=metallb_resources(spec),
        )
    ]

