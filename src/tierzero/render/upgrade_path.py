"""Whether a running cluster may go from the versions it runs to the spec's, and in which order
(pure: versions in, problems and an order out).

Rules, each with its source:
- Talos: no downgrade through an upgrade (Talos keeps the previous version for `talosctl
  rollback`, which is the way back); a minor release may not be skipped: "migration is only
  tested between adjacent minor releases ... always upgrade to the latest patch release of all
  intermediate minor releases" (docs.siderolabs.com/talos/v1.11/configure-your-talos-cluster/
  lifecycle-management/upgrading-talos, "Supported upgrade paths"). Not upgrading to the newest
  patch of the current minor first is only advice there, so it is not refused.
- Kubernetes: the same minor or the next one, never back: talosctl upgrade-k8s refuses any other
  path ("unsupported upgrade path"; siderolabs/talos v1.12.11 pkg/cluster/kubernetes/
  talos_managed.go Upgrade, siderolabs/go-kubernetes upgrade.Path.IsSupported).
- Every node's Talos must support the target Kubernetes (talosctl upgrade-k8s
  VerifyVersionCompatibility), and the Kubernetes the cluster runs must be supported by the
  target Talos, so Talos is upgraded first, on every node, then Kubernetes (Talos' support
  matrix: the spec's `tierzero.spec.semantic.supported_versions`, dated there).
- Order: control planes first, in the spec's order, then workers, one node at a time (talosctl
  upgrade-k8s walks the control planes first, then the kubelets; Talos refuses a control-plane
  upgrade while etcd is not whole, so one control plane at a time is the only order that passes).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Mapping

_VERSION = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)")


def parse(version: str) -> tuple[int, int, int]:
    """(major, minor, patch) of "v1.13.9" or "1.36.2"; ValueError naming the text otherwise."""
    found = _VERSION.match(version.strip())
    if found is None:
        raise ValueError(f"not a version: {version!r}")
    return int(found[1]), int(found[2]), int(found[3])


def _minor(version: str) -> str:
    major, minor, _ = parse(version)
    return f"{major}.{minor}"


@dataclass(frozen=True)
class NodeVersions:
    """What one node runs now: its Talos tag ("v1.13.8") and its kubelet's version ("v1.35.0",
    "" when unknown)."""

    name: str
    role: str  # "controlplane" or "worker"
    talos: str
    kubelet: str = ""


def talos_problem(current: str, target: str) -> str | None:
    """Why a node running Talos `current` may not be upgraded to `target`, or None."""
    have, want = parse(current), parse(target)
    if want < have:
        return (f"Talos {target} is older than the {current} it runs: an upgrade does not go back "
                f"(use `talosctl rollback` to boot the previous version, or set talos_version to {current} or newer)")
    if want[:2] > (have[0], have[1] + 1):
        nxt = f"v{have[0]}.{have[1] + 1}"
        return (f"Talos {current} -> {target} skips a minor release; Talos tests upgrades between adjacent minors only: "
                f"set talos_version to the newest {nxt}.x first, deploy, then to {target}")
    return None


def kubernetes_problem(current: str, target: str) -> str | None:
    """Why Kubernetes `current` may not be upgraded to `target` (same minor or the next), or None."""
    have, want = parse(current), parse(target)
    if want < have:
        return f"Kubernetes {target.lstrip('v')} is older than the {current.lstrip('v')} running: Kubernetes is not downgraded"
    if want[:2] > (have[0], have[1] + 1):
        return (f"Kubernetes {current.lstrip('v')} -> {target.lstrip('v')} skips a minor release (unsupported upgrade path): "
                f"set kubernetes_version to {have[0]}.{have[1] + 1}.x first, deploy, then to {target.lstrip('v')}")
    return None


def support_problem(talos: str, kubernetes: str, matrix: Mapping[str, Mapping[str, str]]) -> str | None:
    """Why Talos `talos` does not run Kubernetes `kubernetes` (per Talos' support matrix), or None."""
    row = matrix.get("v" + _minor(talos))
    if row is None:
        return f"Talos {talos} is not in tierzero's support matrix ({', '.join(matrix)})"
    lo, hi, k = parse(row["kubernetes_min"] + ".0"), parse(row["kubernetes_max"] + ".0"), parse(kubernetes)
    if not lo[:2] <= k[:2] <= hi[:2]:
        return (f"Talos {talos} supports Kubernetes {row['kubernetes_min']} to {row['kubernetes_max']}, "
                f"not {kubernetes.lstrip('v')} (source: {row.get('source', 'Talos support matrix')})")
    return None


def check(nodes: Iterable[NodeVersions], talos: str, kubernetes: str, matrix: Mapping[str, Mapping[str, str]]) -> list[str]:
    """Every reason the roll to Talos `talos` and Kubernetes `kubernetes` may not start, each
    naming its node. Empty: go."""
    out: list[str] = []
    for node in nodes:
        for problem in (talos_problem(node.talos, talos),
                        kubernetes_problem(node.kubelet, kubernetes) if node.kubelet else None,
                        support_problem(talos, node.kubelet, matrix) if node.kubelet else None):
            if problem:
                out.append(f"{node.name}: {problem}")
    return out


def order(nodes: Iterable[NodeVersions]) -> list[str]:
    """Node names in roll order: control planes, then workers, each in the given order."""
    listed = list(nodes)
    return [n.name for n in listed if n.role == "controlplane"] + [n.name for n in listed if n.role != "controlplane"]


__all__ = ["NodeVersions", "check", "kubernetes_problem", "order", "parse", "support_problem", "talos_problem"]
