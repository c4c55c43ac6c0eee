"""How readiness is judged from Flux's objects (`phases.flux_status`): Ready for the current
generation, at the revision at the head of the branch, and never on zero Kustomizations."""

from __future__ import annotations

from typing import Any

from tierzero.phases.flux_status import flux_report, judge

REV = "main@sha1:" + "a" * 40


def ks(name: str, *, ready: str = "True", reason: str = "ReconciliationSucceeded", generation: int = 1, observed: int = 1,
       applied: str | None = REV, source: str = "flux-system") -> dict[str, Any]:
    return {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
            "metadata": {"name": name, "namespace": "flux-system", "generation": generation},
            "spec": {"sourceRef": {"kind": "GitRepository", "name": source}},
            "status": {"observedGeneration": observed, "lastAppliedRevision": applied,
                       "conditions": [{"type": "Ready", "status": ready, "reason": reason, "message": f"{reason} message"}]}}


class FakeKube:
    def __init__(self, kustomizations: list[dict[str, Any]], releases: list[dict[str, Any]] = (), source: str | None = REV) -> None:  # type: ignore[assignment]
        self.objects = {"Kustomization": kustomizations, "HelmRelease": list(releases)}
        self.source = source

    def get(self, api: str, kind: str, name: str, ns: str | None = None) -> dict[str, Any]:
        return {"status": {"artifact": {"revision": self.source}, "conditions": [{"type": "Ready", "status": "True"}]}}

    def list(self, api: str, kind: str, ns: str | None) -> list[dict[str, Any]]:
        return self.objects[kind]


def test_each_way_of_not_being_reconciled() -> None:
    assert judge(ks("a"), REV).reconciled
    assert judge(ks("a", ready="False", reason="BuildFailed"), REV).why == "BuildFailed: BuildFailed message"
    assert judge(ks("a", generation=2), REV).why == "generation 2 not yet observed (observed 1)"
    old = "main@sha1:" + "b" * 40
    assert judge(ks("a", applied=old), REV).why == f"applied {old}, not {REV}"
    assert judge(ks("ccm", applied=None, source="oci-ccm"), REV).reconciled  # another source: its own revisions
    assert judge({"kind": "Kustomization", "metadata": {"name": "x", "namespace": "flux-system"}}, REV).why == "no status yet (is Flux running?)"


def test_the_report_names_everything_and_never_passes_on_nothing() -> None:
    empty = flux_report(FakeKube([]), REV)
    assert not empty.ok and empty.pending() == ["no Kustomization exists: Flux has applied nothing from the repository"]
    report = flux_report(FakeKube([ks("flux-system"), ks("apps", ready="False", reason="DependencyNotReady")],
                                  [ks("cert-manager", reason="NotRunInSandbox") | {"kind": "HelmRelease"}]), REV)
    assert report.pending() == ["Kustomization flux-system/apps: DependencyNotReady: DependencyNotReady message"]
    assert report.evidence().startswith(f"1/2 Kustomizations Ready (apps, flux-system) at {REV}; 1/1 HelmReleases Ready (cert-manager [NotRunInSandbox])")
    behind = flux_report(FakeKube([ks("flux-system")], source="main@sha1:" + "c" * 40), REV)
    assert behind.pending()[0] == f"GitRepository flux-system/flux-system has main@sha1:{'c' * 40}, the branch is at {REV}"
