"""Control-plane-only clusters and external load balancers.

Talos labels control-plane nodes `node.kubernetes.io/exclude-from-external-load-balancers` in the configs it
generates (since contract 1.8: siderolabs/talos `pkg/machinery/config/contract.go`,
AddExcludeFromExternalLoadBalancer; written by `generate/init.go` into `.machine.nodeLabels` before v1.14 and by
`generate/kubernetes.go` into the KubeNodeConfig document from v1.14). Kubernetes' service controller leaves
labelled nodes out of cloud load balancers (k8s.io/cloud-provider, the OCI CCM's load balancers too) and MetalLB
≥ 0.14 does not announce from them (metallb/metallb issue 2676). In a cluster with no workers every node is a
control plane, so a LoadBalancer Service would never be reachable.

tierzero removes the label from the control-plane configs when a cluster has no workers and renders a
load-balancer provider. Removing it from the config removes it from the Node too: Talos' NodeApplyController
deletes labels it owns once they leave the config (internal/app/machined/pkg/controllers/k8s/node_apply.go,
applyNodeKV, at v1.14.0-rc.1). A `$patch: delete` removal is how Talos patches delete a key
(pkg/machinery/config/configloader/internal/decoder/delete.go).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tierzero.render.talos.contract import Contract
from tierzero.render.talos.legacy import LABEL_EXCLUDE_FROM_LB

if TYPE_CHECKING:
    from tierzero.spec.clusters import Cluster


@dataclass(frozen=True)
class ExcludeLabelDecision:
    """Which load-balancer providers the cluster renders, and whether the control planes lose the label."""

    cluster: str
    providers: tuple[str, ...]
    workers: int
    remove_label: bool

    def describe(self) -> str | None:
        """One line for `check`, or None when the cluster renders no load-balancer provider."""
        if not self.providers:
            return None
        names = ", ".join(self.providers)
        if self.remove_label:
            return (f"cluster {self.cluster}: no workers, so the control-plane configs drop the label {LABEL_EXCLUDE_FROM_LB} "
                    f"(a Talos patch) so that {names} can use the control planes")
        return (f"cluster {self.cluster}: control planes keep {LABEL_EXCLUDE_FROM_LB}; {names} use the "
                f"{self.workers} worker(s)")


def load_balancer_providers(cluster: "Cluster") -> tuple[str, ...]:
    addons = cluster.addons
    providers = []
    if addons.metallb is not None and addons.metallb.enabled:
        providers.append("MetalLB" if addons.metallb.implementation == "metallb" else "Cilium LB-IPAM with L2 announcements")
    if addons.oci_ccm is not None and addons.oci_ccm.enabled:
        providers.append("the OCI cloud-controller-manager's load balancers")
    return tuple(providers)


def exclude_label_decision(cluster: "Cluster") -> ExcludeLabelDecision:
    providers = load_balancer_providers(cluster)
    return ExcludeLabelDecision(cluster.name, providers, len(cluster.workers), bool(providers) and not cluster.workers)


def remove_exclude_label_patch(talos_version: str) -> str:
    """The Talos patch (JSON) that deletes the label from a control-plane config of this contract."""
    delete = {LABEL_EXCLUDE_FROM_LB: {"$patch": "delete"}}
    if Contract.parse(talos_version).multidoc_kubernetes:
        return json.dumps({"apiVersion": "v1alpha1", "kind": "KubeNodeConfig", "labels": delete}, sort_keys=True)
    return json.dumps({"machine": {"nodeLabels": delete}}, sort_keys=True)
