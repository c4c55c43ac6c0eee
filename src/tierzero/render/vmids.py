"""The VMIDs of the Talos VMs: one rule for the platform phase, the host preparation and the diagram."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tierzero.spec.models import Platform

FIRST_VMID = 1000


def assign_vmids(spec: Platform) -> dict[tuple[str, str], int]:
    """Stable VMIDs by (cluster, node): the spec's own, else from 1000 up in spec order, skipping
    every VMID the spec gives explicitly (to VMs or services)."""
    taken = {n.vmid for c in spec.clusters for _, n in c.nodes() if n.vmid} | {s.vmid for s in spec.services}
    out: dict[tuple[str, str], int] = {}
    nxt = FIRST_VMID
    for cluster in spec.clusters:
        for _, node in cluster.nodes():
            if node.vmid:
                out[(cluster.name, node.name)] = node.vmid
                continue
            while nxt in taken:
                nxt += 1
            out[(cluster.name, node.name)] = nxt
            taken.add(nxt)
    return out
