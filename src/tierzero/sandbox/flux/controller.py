"""The Flux stand-in's control loop for one cluster: source-, kustomize- and helm-controller as
far as `source.py`, `kustomize.py` and `helm.py` play them, each running only once its
Deployment exists in the cluster (Flux installed from what tierzero committed), and writing
only status, as a controller does.

When an object is reconciled (the real controllers' triggers): its generation changed, the
`reconcile.fluxcd.io/requestedAt` annotation changed (what `flux reconcile` sets; echoed in
`status.lastHandledReconcileAt`), its source's revision or its dependencies changed, its last
run failed and `retryInterval` passed, or `interval` passed. Intervals run on the sandbox
clock (`SandboxOptions.flux_interval_scale`). A reconcile writes its final status in one go;
the real controllers also pass through Ready=Unknown "Reconciliation in progress" on the way.
Conditions keep their lastTransitionTime while their status stays the same (fluxcd/pkg
runtime/conditions).
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tierzero.sandbox.flux import helm, kustomize, source
from tierzero.sandbox.git_forge import GitForge
from tierzero.sandbox.kubernetes import KubeState

SRC = "source.toolkit.fluxcd.io/v1"
HR = "helm.toolkit.fluxcd.io/v2"
REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"
OFFLINE_SOURCES = ("HelmRepository", "OCIRepository", "HelmChart", "Bucket")


def duration(text: str | None, default: float = 600.0) -> float:
    """Seconds of a Go duration like "1m", "10m0s", "1h30m", "500ms"."""
    if not text:
        return default
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", str(text))
    if not parts:
        return default
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    return sum(float(n) * scale[u] for n, u in parts)


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def with_condition(conditions: list[dict[str, Any]], kind: str, status: str, reason: str, message: str, generation: int) -> list[dict[str, Any]]:
    old = next((c for c in conditions if c.get("type") == kind), None)
    since = old["lastTransitionTime"] if old and old.get("status") == status and old.get("lastTransitionTime") else _now()
    new = {"type": kind, "status": status, "reason": reason, "message": message, "observedGeneration": generation, "lastTransitionTime": since}
    return [c for c in conditions if c.get("type") != kind] + [new]


@dataclass
class Memo:
    work: Any = None
    at: float = 0.0
    ok: bool = True
    waiting: list[str] = field(default_factory=list)  # a health check in progress
    since: float = 0.0
    result: Any = None


class FluxController:
    def __init__(self, cluster: str, state: KubeState, forge: GitForge | None, workdir: Path, scale: float) -> None:
        self.cluster, self.state, self.forge, self.workdir, self.scale = cluster, state, forge, workdir, scale
        self.memo: dict[tuple[str, str, str], Memo] = {}
        self.artifacts: dict[tuple[str, str], Path] = {}
        self.errors: list[str] = []  # the loop's own failures (a stand-in bug), for tests
        self.ticks = 0  # looks taken at the cluster, for tests that wait for one
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"flux-{cluster}", daemon=True)

    def start(self) -> FluxController:
        self._resume()
        self._thread.start()
        return self

    def _resume(self) -> None:
        """After a restart of the sandbox, carry on from the status the objects hold: nothing
        could change while the Git host and the API were down with it, so what a saved status
        says is still true until an interval passes (the real controllers, restarted, would
        reconcile everything once; here that would only burn the machine's time)."""
        now = time.monotonic()
        for repo in self.state.read_all(SRC, "GitRepository"):
            artifact = (repo.get("status") or {}).get("artifact") or {}
            meta = repo["metadata"]
            commit = str(artifact.get("revision", "")).rpartition(":")[2]
            directory = self.workdir / "gitrepository" / meta.get("namespace", "") / meta["name"] / commit
            if commit and directory.is_dir():
                self.artifacts[(meta.get("namespace", ""), meta["name"])] = directory
                self.memo[("GitRepository", meta.get("namespace", ""), meta["name"])] = Memo(self._git_work(repo), now, True)
        for ks in self.state.read_all(kustomize.KS, "Kustomization"):
            meta = ks["metadata"]
            if kustomize.healthy(ks):
                self.memo[("Kustomization", meta.get("namespace", ""), meta["name"])] = Memo(self._ks_work(ks)[0], now, True)
        for release in self.state.read_all(HR, "HelmRelease"):
            meta = release["metadata"]
            if kustomize.healthy(release):
                self.memo[("HelmRelease", meta.get("namespace", ""), meta["name"])] = Memo(self._hr_work(release)[0], now, True)

    def stop(self) -> None:
        self._stop.set()
        with self.state.changes:
            self.state.changes.notify_all()
        self._thread.join(30)

    def _loop(self) -> None:
        while not self._stop.is_set():
            seen = self.state.version
            try:
                self.tick()
                self.ticks += 1
            except Exception as exc:  # noqa: BLE001 - a controller never dies of one object
                self.errors.append(f"{type(exc).__name__}: {exc}")
            with self.state.changes:  # a change during the tick (ours included) means another look at once
                if not self._stop.is_set() and self.state.version == seen:
                    self.state.changes.wait(0.25)

    def installed(self, controller: str) -> bool:
        return self.state.read("apps/v1", "Deployment", controller, "flux-system") is not None

    def _due(self, key: tuple[str, str, str], work: Any, interval: float, retry: float) -> Memo | None:
        memo = self.memo.setdefault(key, Memo())
        now = time.monotonic()
        if memo.work != work or now - memo.at >= interval * self.scale or (not memo.ok and now - memo.at >= retry * self.scale):
            memo.work, memo.at = work, now
            return memo
        return None

    def tick(self) -> None:
        """One look at every object; a suspended one (`spec.suspend: true`) is left as it is
        (fluxcd/pkg apis/meta: "suspend ... tells the controller to suspend subsequent reconciliations")."""
        if not self.installed("source-controller"):
            return
        for repo in self._active(SRC, "GitRepository"):
            self._git(repo)
        for kind in OFFLINE_SOURCES:
            for obj in self._active(SRC, kind):
                self._offline(obj)
        if self.installed("kustomize-controller"):
            for ks in self._active(kustomize.KS, "Kustomization"):
                self._kustomization(ks)
        if self.installed("helm-controller"):
            for release in self._active(HR, "HelmRelease"):
                self._helm(release)

    def _active(self, api: str, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.state.read_all(api, kind) if not (o.get("spec") or {}).get("suspend")]

    # -- helpers

    def _write(self, obj: dict[str, Any], api: str, ready: str, reason: str, message: str, *, success: bool, **fields: Any) -> None:
        meta = obj["metadata"]
        status = dict(obj.get("status") or {})
        gen = meta.get("generation", 1)
        status["conditions"] = with_condition(status.get("conditions") or [], "Ready", ready, reason, message, gen)
        if success:
            status["observedGeneration"] = gen
        requested = (meta.get("annotations") or {}).get(REQUESTED_AT)
        if requested:
            status["lastHandledReconcileAt"] = requested
        status.update({k: v for k, v in fields.items() if v is not None})
        self.state.write_status(api, obj["kind"], meta["name"], meta.get("namespace"), status)

    @staticmethod
    def _requested(obj: dict[str, Any]) -> str | None:
        return (obj["metadata"].get("annotations") or {}).get(REQUESTED_AT)

    # -- source-controller

    def _git_work(self, repo: dict[str, Any]) -> Any:
        return (repo["metadata"].get("generation"), self._requested(repo))

    def _git(self, repo: dict[str, Any]) -> None:
        meta, spec = repo["metadata"], repo.get("spec", {})
        key = ("GitRepository", meta.get("namespace", ""), meta["name"])
        memo = self._due(key, self._git_work(repo), duration(spec.get("interval"), 60), 60)
        if memo is None:
            return
        secret_name = (spec.get("secretRef") or {}).get("name")
        secret = self.state.read("v1", "Secret", secret_name, meta.get("namespace")) if secret_name else None
        out = source.fetch(repo, secret, self.forge, self.workdir)
        memo.ok = out.ready == "True"
        if out.directory is not None:
            self.artifacts[key[1:]] = out.directory
        extra: dict[str, Any] = {"artifact": out.artifact} if out.artifact else {}
        if out.artifact:
            conds = with_condition((repo.get("status") or {}).get("conditions") or [], "ArtifactInStorage", "True", "Succeeded", out.message, meta.get("generation", 1))
            extra["conditions"] = None
            repo = {**repo, "status": {**(repo.get("status") or {}), "conditions": conds}}
        self._write(repo, SRC, out.ready, out.reason, out.message, success=out.ready == "True", **extra)

    def _offline(self, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        memo = self._due((obj["kind"], meta.get("namespace", ""), meta["name"]), (meta.get("generation"), self._requested(obj)), 1e12, 1e12)
        if memo is not None:
            url = obj.get("spec", {}).get("url", "its URL")
            self._write(obj, SRC, "True", source.NOT_RUN, f"sandbox: {url} is on the internet, which the sandbox does not reach: nothing was fetched",
                        success=True)

    # -- kustomize-controller

    def _ks_work(self, ks: dict[str, Any]) -> tuple[Any, dict[str, Any] | None, str | None, str | None]:
        """(what a reconcile depends on, the source object, its revision, its Ready reason)."""
        meta, spec = ks["metadata"], ks.get("spec", {})
        ns = meta.get("namespace", "")
        ref = spec.get("sourceRef") or {}
        src = self.state.read(SRC, str(ref.get("kind")), str(ref.get("name")), ref.get("namespace") or ns)
        src_status = (src or {}).get("status", {})
        revision = (src_status.get("artifact") or {}).get("revision")
        dep_state = tuple(str(((self.state.read(kustomize.KS, "Kustomization", d.get("name"), d.get("namespace") or ns) or {}).get("status") or {}).get("conditions"))
                          for d in spec.get("dependsOn") or [])
        src_ready = next((c.get("reason") for c in src_status.get("conditions", []) if c.get("type") == "Ready"), None)
        return (meta.get("generation"), self._requested(ks), revision, src_ready, dep_state), src, revision, src_ready

    def _kustomization(self, ks: dict[str, Any]) -> None:
        meta, spec = ks["metadata"], ks.get("spec", {})
        ns = meta.get("namespace", "")
        key = ("Kustomization", ns, meta["name"])
        ref = spec.get("sourceRef") or {}
        work, src, revision, src_ready = self._ks_work(ks)
        memo = self.memo.get(key)
        if memo is not None and memo.waiting and memo.work == work:
            return self._health(ks, memo)
        memo = self._due(key, work, duration(spec.get("interval"), 600), duration(spec.get("retryInterval") or spec.get("interval"), 600))
        if memo is None:
            return
        memo.waiting = []
        try:
            if src is None:
                raise kustomize.Failure("ArtifactFailed", f"{ref.get('kind')}.source.toolkit.fluxcd.io \"{ref.get('name')}\" not found")
            if src_ready == source.NOT_RUN:
                memo.ok = True
                return self._write(ks, kustomize.KS, "True", source.NOT_RUN,
                                   f"sandbox: its source {ref.get('kind')} {ref.get('namespace') or ns}/{ref.get('name')} is on the internet, which the "
                                   "sandbox does not reach: nothing was applied", success=True)
            artifact = self.artifacts.get((ref.get("namespace") or ns, str(ref.get("name"))))
            if not revision or artifact is None:
                raise kustomize.Failure("ArtifactFailed", "Source artifact not found, retrying in 30s")
            kustomize.check_dependencies(self.state, ks, revision)
            result = kustomize.reconcile(self.state, ks, artifact, revision)
        except kustomize.Failure as failure:
            memo.ok = False
            attempted = revision if failure.reason not in ("ArtifactFailed", "DependencyNotReady") else None
            return self._write(ks, kustomize.KS, "False", failure.reason, failure.message, success=False, lastAttemptedRevision=attempted)
        memo.ok = True
        if result.waiting:
            memo.waiting, memo.since, memo.result = result.waiting, time.monotonic(), result
        self._write(ks, kustomize.KS, result.ready, result.reason, result.message, success=result.ready == "True",
                    lastAttemptedRevision=result.attempted, lastAppliedRevision=result.applied,
                    inventory={"entries": result.inventory} if result.inventory is not None else None)

    def _health(self, ks: dict[str, Any], memo: Memo) -> None:
        spec = ks.get("spec", {})
        memo.waiting = kustomize.still_waiting(self.state, memo.waiting)
        revision = memo.result.attempted
        if not memo.waiting:
            return self._write(ks, kustomize.KS, "True", "ReconciliationSucceeded", f"Applied revision: {revision}", success=True,
                               lastAppliedRevision=revision)
        if time.monotonic() - memo.since > duration(spec.get("timeout") or spec.get("interval"), 600) * self.scale:
            memo.ok, memo.waiting = False, []
            stuck = ", ".join(f"{w} status: 'InProgress'" for w in kustomize.still_waiting(self.state, memo.result.waiting))
            self._write(ks, kustomize.KS, "False", "HealthCheckFailed", f"timeout waiting for: [{stuck}]", success=False)

    # -- helm-controller

    def _hr_work(self, release: dict[str, Any]) -> tuple[Any, Any, Any, list[Any], list[Any]]:
        meta, spec = release["metadata"], release.get("spec", {})
        ns = meta.get("namespace", "")
        ref = helm.source_ref(release)
        src = self.state.read(SRC, ref[0], ref[2], ref[1]) if ref else None
        deps = [(d.get("namespace") or ns, d.get("name")) for d in spec.get("dependsOn") or []]
        dep_objs = [self.state.read(HR, "HelmRelease", n, d_ns) for d_ns, n in deps]
        work = (meta.get("generation"), self._requested(release), src is not None, tuple(str((o or {}).get("status")) for o in dep_objs))
        return work, ref, src, deps, dep_objs

    def _helm(self, release: dict[str, Any]) -> None:
        meta, spec = release["metadata"], release.get("spec", {})
        ns = meta.get("namespace", "")
        work, ref, src, deps, dep_objs = self._hr_work(release)
        memo = self._due(("HelmRelease", ns, meta["name"]), work, duration(spec.get("interval"), 600), duration(spec.get("interval"), 600))
        if memo is None:
            return
        for (d_ns, n), other in zip(deps, dep_objs):
            if not kustomize.healthy(other):
                memo.ok = False
                return self._write(release, HR, "False", "DependencyNotReady", f"dependency '{d_ns}/{n}' is not ready", success=False)
        if ref is None or src is None:
            memo.ok = False
            what = f"{ref[0]} '{ref[1]}/{ref[2]}'" if ref else "its chart source"
            return self._write(release, HR, "False", "ArtifactFailed", f"{what} not found", success=False)
        chart, version = helm.chart_of(release, src)
        registered = []
        if ((spec.get("install") or {}).get("crds") or "Create") != "Skip":
            for crd in helm.crd_documents(chart):
                self.state.apply(crd, "helm-controller")
                registered.append(crd["spec"]["names"]["kind"])
        memo.ok = True
        note = f"; its CRDs a config uses are registered ({', '.join(registered)})" if registered else ""
        self._write(release, HR, "True", helm.NOT_RUN, f"sandbox: chart {chart}@{version} was not installed: the sandbox runs no Helm and reaches no "
                    f"chart repository; its source and dependencies check out{note}", success=True)
