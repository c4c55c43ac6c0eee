"""What Flux reports about a cluster: every Kustomization and HelmRelease by name, judged
against the revision that is really at the head of the branch.

An object counts as reconciled when its Ready condition is True for its current spec
(`status.observedGeneration == metadata.generation`; controllers set it on success only,
kustomize-controller v1.8.4 `Reconcile`), and a Kustomization built from the cluster's own
GitRepository has also applied that revision (`status.lastAppliedRevision`, written as
`<branch>@sha1:<commit>`). No Kustomization at all is never a pass: Flux has applied nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

KUSTOMIZE = "kustomize.toolkit.fluxcd.io/v1"
HELM = "helm.toolkit.fluxcd.io/v2"
SOURCE = "source.toolkit.fluxcd.io/v1"
NS = "flux-system"
# The controllers' own reasons for Ready=True (fluxcd/pkg apis/meta; helm-controller api/v2 condition_types.go @ v1.5.4).
SUCCESS_REASONS = frozenset({"ReconciliationSucceeded", "Succeeded", "InstallSucceeded", "UpgradeSucceeded", "TestSucceeded"})


@dataclass(frozen=True)
class Item:
    kind: str
    namespace: str
    name: str
    reconciled: bool
    why: str  # the Ready reason and message, or what is missing
    reason: str = ""

    def label(self) -> str:
        note = f" [{self.reason}]" if self.reconciled and self.reason and self.reason not in SUCCESS_REASONS else ""
        return f"{self.name}{note}"


@dataclass
class FluxReport:
    revision: str | None  # the branch head as Flux names it, when known
    source: str | None  # the revision the flux-system GitRepository has stored
    source_why: str = ""  # its Ready reason and message when it is not Ready
    kustomizations: list[Item] = field(default_factory=list)
    helmreleases: list[Item] = field(default_factory=list)

    def pending(self) -> list[str]:
        out = []
        if not self.kustomizations:
            out.append("no Kustomization exists: Flux has applied nothing from the repository")
        if self.source_why:
            out.append(f"GitRepository {NS}/{NS}: {self.source_why}")
        elif self.revision and self.source != self.revision:
            out.append(f"GitRepository {NS}/{NS} has {self.source or 'no artifact'}, the branch is at {self.revision}")
        out += [f"{i.kind} {i.namespace}/{i.name}: {i.why}" for i in (*self.kustomizations, *self.helmreleases) if not i.reconciled]
        return out

    @property
    def ok(self) -> bool:
        return not self.pending()

    def evidence(self) -> str:
        def part(items: list[Item], kind: str) -> str:
            ready = [i for i in items if i.reconciled]
            return f"{len(ready)}/{len(items)} {kind} Ready ({', '.join(i.label() for i in items) or 'none'})"

        at = f" at {self.revision}" if self.revision else ""
        text = f"{part(self.kustomizations, 'Kustomizations')}{at}; {part(self.helmreleases, 'HelmReleases')}"
        pending = self.pending()
        return text + (f"; waiting: {'; '.join(pending[:8])}" if pending else "")


def _ready(obj: Mapping[str, Any]) -> dict[str, Any]:
    return next((c for c in obj.get("status", {}).get("conditions", []) if c.get("type") == "Ready"), {})


def judge(obj: Mapping[str, Any], revision: str | None) -> Item:
    meta, status, spec = obj.get("metadata", {}), obj.get("status", {}), obj.get("spec", {})
    kind = str(obj.get("kind"))
    ready = _ready(obj)
    reason = str(ready.get("reason", ""))
    why = f"{reason}: {ready.get('message', '')}" if ready else "no status yet (is Flux running?)"
    ok = ready.get("status") == "True"
    if ok and status.get("observedGeneration") != meta.get("generation"):
        ok, why = False, f"generation {meta.get('generation')} not yet observed (observed {status.get('observedGeneration')})"
    ref = spec.get("sourceRef") or {}
    own = kind == "Kustomization" and ref.get("kind") == "GitRepository" and ref.get("name") == NS and (ref.get("namespace") or meta.get("namespace")) == NS
    if ok and own and revision and status.get("lastAppliedRevision") != revision:
        ok, why = False, f"applied {status.get('lastAppliedRevision') or 'nothing'}, not {revision}"
    return Item(kind, str(meta.get("namespace", "")), str(meta.get("name", "")), ok, why, reason)


def flux_report(kube: Any, revision: str | None) -> FluxReport:
    """Read the cluster's Flux objects (blocking)."""
    repo = kube.get(SOURCE, "GitRepository", NS, NS)
    source = (repo or {}).get("status", {}).get("artifact", {}).get("revision")
    ready = _ready(repo or {})
    why = f"{ready.get('reason')}: {ready.get('message', '')}" if ready and ready.get("status") != "True" else ""
    report = FluxReport(revision, source, why)
    for api, kind, into in ((KUSTOMIZE, "Kustomization", report.kustomizations), (HELM, "HelmRelease", report.helmreleases)):
        objs = sorted(kube.list(api, kind, None), key=lambda o: (o.get("metadata", {}).get("namespace", ""), o.get("metadata", {}).get("name", "")))
        into.extend(judge({**o, "kind": kind}, revision) for o in objs)
    return report
