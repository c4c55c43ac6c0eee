"""kustomize-controller's reconcile for the Flux stand-in: dependencies, path, build,
decryption, a dry run of every object, apply, prune, health (kustomize-controller v1.8.4
internal/controller/kustomization_controller.go; fluxcd/pkg ssa v0.67.4; research §3.2).

Rules, in the controller's order:
- `dependsOn`: a missing one is DependencyNotReady "dependency '<ns>/<name>' not found: ...",
  one not Ready for its generation "dependency '<ns>/<name>' is not ready", one from the same
  source at another revision "dependency '<ns>/<name>' revision is not up to date"
- the source must exist (ArtifactFailed: the API's NotFound text) and have an artifact
  (ArtifactFailed "Source artifact not found, retrying in 30s")
- the path must exist in the artifact: ArtifactFailed "kustomization path not found: stat
  /tmp/kustomization-<n>/<path>: no such file or directory"; then lastAttemptedRevision
- build and decryption (`build.py`): BuildFailed
- a dry run of every object before any is applied (fluxcd/pkg ssa ApplyAllStaged: CRDs and
  Namespaces first), failing ReconciliationFailed with ssa's DryRunErr wording:
  "<Kind>/<ns>/<name> dry-run failed (Invalid): <the API server's message>" for a name it
  refuses, "<Kind>/<ns>/<name> dry-run failed: no matches for kind "<Kind>" in version
  "<apiVersion>"" for a kind nobody serves, "<Kind>/<ns>/<name> not found: namespaces "<ns>" not
  found", "<Kind>/<name> namespace not specified: ..."; the refusals are the API stand-in's own
  (`KubeState.check`, `tierzero.sandbox.kube_admission`), so the dry run and the apply agree; an
  encrypted object without `spec.decryption` fails here too (KC `apply()`)
- apply (labels kustomize.toolkit.fluxcd.io/name and /namespace), prune what the previous
  inventory held and the build no longer does (`prune: true`), inventory ids
  "<ns>_<name>_<group>_<kind>"
- `wait: true`: every applied Flux object (but itself) Ready for its generation; until then
  Ready=Unknown Progressing "Running health checks for revision <rev> with a timeout of <t>",
  after `timeout` HealthCheckFailed. Built-in objects count as current: no kubelet runs here
- success: Ready=True ReconciliationSucceeded "Applied revision: <rev>", lastAppliedRevision,
  observedGeneration (set on success only)
- a spec field the stand-in does not play (targetNamespace, patches, images, postBuild, ...)
  is refused with its own reason `NotPlayedInSandbox`, never silently ignored
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tierzero.sandbox.flux import build as kbuild
from tierzero.sandbox.kube_admission import invalid_name
from tierzero.sandbox.kubernetes import KubeState

KS = "kustomize.toolkit.fluxcd.io/v1"
NAME_LABEL, NS_LABEL = "kustomize.toolkit.fluxcd.io/name", "kustomize.toolkit.fluxcd.io/namespace"
PLAYED = {"interval", "retryInterval", "timeout", "path", "prune", "wait", "dependsOn", "decryption", "sourceRef", "suspend", "force"}


@dataclass
class Result:
    ready: str
    reason: str
    message: str
    attempted: str | None = None  # lastAttemptedRevision
    applied: str | None = None  # lastAppliedRevision on success
    inventory: list[dict[str, str]] | None = None
    waiting: list[str] = field(default_factory=list)  # Flux objects the health check waits for


class Failure(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message


def _inventory_id(obj: dict[str, Any]) -> dict[str, str]:
    group, _, version = str(obj.get("apiVersion", "")).rpartition("/")
    meta = obj.get("metadata") or {}
    return {"id": f"{meta.get('namespace', '')}_{meta.get('name')}_{group}_{obj.get('kind')}", "v": version}


def check_dependencies(state: KubeState, ks: dict[str, Any], source_revision: str | None) -> None:
    ns = ks["metadata"]["namespace"]
    ref = ks.get("spec", {}).get("sourceRef") or {}
    for dep in ks.get("spec", {}).get("dependsOn") or []:
        key = f"{dep.get('namespace') or ns}/{dep.get('name')}"
        other = state.read(KS, "Kustomization", dep.get("name"), dep.get("namespace") or ns)
        if other is None:
            raise Failure("DependencyNotReady", f"dependency '{key}' not found: kustomizations.kustomize.toolkit.fluxcd.io \"{dep.get('name')}\" not found")
        status = other.get("status") or {}
        if not healthy(other):
            raise Failure("DependencyNotReady", f"dependency '{key}' is not ready")
        theirs = other.get("spec", {}).get("sourceRef") or {}
        same = theirs.get("kind") == ref.get("kind") and theirs.get("name") == ref.get("name") and \
            (theirs.get("namespace") or other["metadata"]["namespace"]) == (ref.get("namespace") or ns)
        if same and source_revision and status.get("lastAppliedRevision") != source_revision:
            raise Failure("DependencyNotReady", f"dependency '{key}' revision is not up to date")


def _dry_run(state: KubeState, objects: list[kbuild.Resource], decrypting: bool) -> None:
    defined = {(f"{o.obj['spec']['group']}/{v['name']}", o.obj["spec"]["names"]["kind"]): o.obj["spec"].get("scope") != "Cluster"
               for o in objects if o.obj.get("kind") == "CustomResourceDefinition"
               for v in (o.obj.get("spec", {}).get("versions") or []) if v.get("served")}
    namespaces = {o.obj["metadata"]["name"] for o in objects if o.obj.get("kind") == "Namespace"}
    for res in objects:
        obj, where = res.obj, kbuild.where(res)
        meta = obj.get("metadata") or {}
        if kbuild.is_encrypted(obj) and not decrypting:
            raise Failure("ReconciliationFailed", f"{obj.get('kind')}/{meta.get('namespace', '')}/{meta.get('name')} is SOPS encrypted, "
                          "configuring decryption is required for this secret to be reconciled")
        served = state.resource(str(obj.get("apiVersion")), str(obj.get("kind")))
        namespaced = served.namespaced if served is not None else defined.get((str(obj.get("apiVersion")), str(obj.get("kind"))))
        refused = state.check(obj, frozenset(namespaces)) if served is not None else invalid_name(
            str(obj.get("kind")), str(meta.get("name")), str(obj.get("apiVersion") or "").rpartition("/")[0])
        if refused is not None and refused.reason == "Invalid":
            raise Failure("ReconciliationFailed", f"{where} dry-run failed (Invalid): {refused.message}\n")
        if namespaced is None:
            raise Failure("ReconciliationFailed", f"{where} dry-run failed: no matches for kind \"{obj.get('kind')}\" in version \"{obj.get('apiVersion')}\"\n")
        if namespaced and not meta.get("namespace"):
            raise Failure("ReconciliationFailed", f"{where} namespace not specified: the server could not find the requested resource\n")
        if refused is not None:
            raise Failure("ReconciliationFailed", f"{where} not found: {refused.message}\n")


def healthy(obj: dict[str, Any] | None) -> bool:
    """Whether a Flux object is Ready=True for its current generation (status.observedGeneration)."""
    if obj is None:
        return False
    status = obj.get("status") or {}
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions", []))
    return ready and status.get("observedGeneration") == obj["metadata"].get("generation")


def reconcile(state: KubeState, ks: dict[str, Any], artifact: Path, revision: str) -> Result:
    """One reconcile of `ks` against the source artifact at `revision`. Raises Failure."""
    meta, spec = ks["metadata"], ks.get("spec", {})
    name, ns = meta["name"], meta["namespace"]
    unplayed = sorted(set(spec) - PLAYED)
    if unplayed:
        raise Failure("NotPlayedInSandbox", f"sandbox: spec.{', spec.'.join(unplayed)} is not played by the Flux stand-in")
    path = str(spec.get("path") or "./")
    target = (artifact / path).resolve()
    if not target.is_dir() or (target != artifact.resolve() and artifact.resolve() not in target.parents):
        shown = "/" + "/".join(p for p in f"tmp/kustomization-{zlib.crc32(str(meta.get('uid')).encode())}/{path.removeprefix('./')}".split("/") if p)
        raise Failure("ArtifactFailed", f"kustomization path not found: stat {shown}: no such file or directory")
    try:
        objects = kbuild.build(artifact, path)
        for res in objects:
            if not res.obj.get("apiVersion") or not res.obj.get("kind") or not (res.obj.get("metadata") or {}).get("name"):
                raise kbuild.BuildError(f"kustomize build failed: {res.file}: missing apiVersion, kind or metadata.name")
        decryption = spec.get("decryption") or {}
        if decryption and any(kbuild.is_encrypted(r.obj) for r in objects):
            secret_name = (decryption.get("secretRef") or {}).get("name")
            secret = state.read("v1", "Secret", secret_name, ns) if secret_name else None
            if secret_name and secret is None:
                raise kbuild.BuildError(f"secrets \"{secret_name}\" not found")
            keys = kbuild.age_keys(secret or {})
            for res in objects:
                if kbuild.is_encrypted(res.obj):
                    res.obj = kbuild.decrypt(res, keys)
    except kbuild.BuildError as exc:
        raise Failure(exc.reason, str(exc)) from None
    for res in objects:
        labels = res.obj.setdefault("metadata", {}).setdefault("labels", {})
        labels.update({NAME_LABEL: name, NS_LABEL: ns})
    _dry_run(state, objects, decrypting=bool(spec.get("decryption")))
    staged = sorted(objects, key=lambda r: 0 if r.obj["kind"] in ("CustomResourceDefinition", "Namespace") else 1)
    for res in staged:
        state.apply(res.obj, "kustomize-controller")
    inventory = [_inventory_id(r.obj) for r in staged]
    if spec.get("prune"):
        keep = {e["id"] for e in inventory}
        for entry in (ks.get("status", {}).get("inventory") or {}).get("entries", []):
            if entry["id"] not in keep:
                e_ns, e_name, group, kind = entry["id"].split("_", 3)
                state.remove(f"{group}/{entry['v']}" if group else entry["v"], kind, e_name, e_ns or None)
    waiting = []
    if spec.get("wait"):
        for res in staged:
            obj = res.obj
            if ".toolkit.fluxcd.io/" in str(obj.get("apiVersion")) and not (obj["kind"] == "Kustomization" and obj["metadata"]["name"] == name
                                                                            and obj["metadata"].get("namespace") == ns):
                current = state.read(obj["apiVersion"], obj["kind"], obj["metadata"]["name"], obj["metadata"].get("namespace"))
                if not healthy(current):
                    waiting.append(f"{obj['kind']}/{obj['metadata'].get('namespace')}/{obj['metadata']['name']}")
    if waiting:
        return Result("Unknown", "Progressing", f"Running health checks for revision {revision} with a timeout of {spec.get('timeout') or spec.get('interval')}",
                      attempted=revision, inventory=inventory, waiting=waiting)
    return Result("True", "ReconciliationSucceeded", f"Applied revision: {revision}", attempted=revision, applied=revision, inventory=inventory)


def still_waiting(state: KubeState, waiting: list[str]) -> list[str]:
    """Of the objects a health check waits for, those still not Ready."""
    out = []
    for ref in waiting:
        kind, ns, name = ref.split("/", 2)
        api = {"Kustomization": KS, "HelmRelease": "helm.toolkit.fluxcd.io/v2"}.get(kind, "source.toolkit.fluxcd.io/v1")
        if not healthy(state.read(api, kind, name, ns)):
            out.append(ref)
    return out
