"""kustomize-controller's build for the Flux stand-in: the subset of kustomize tierzero's trees
use, and SOPS decryption with the real `sops` (kustomize-controller v1.8.4; fluxcd/pkg
kustomize/kustomize_generator.go @ kustomize/v1.27.2; research §3, §5).

Rules:
- a directory with kustomization.yaml (.yml, Kustomization) is built from it: `resources`
  (files; directories holding a kustomization file), `namespace` (set on every object but the
  cluster-scoped kinds), `patches` (strategic merge or RFC 6902, with `target`); any other field
  is refused as not played here (not silently ignored)
- a strategic merge patch merges maps key by key (`null` deletes a key); on built-in kinds the
  lists Kubernetes tags `patchStrategy:"merge"` merge by their `patchMergeKey` (containers,
  initContainers, ephemeralContainers, env, volumes, imagePullSecrets by `name`; volumeMounts by
  `mountPath`; container ports by `containerPort`, Service ports by `port`), and a list item
  `$patch: delete` removes its match; every other list is replaced whole, as on custom resources,
  which have no strategic merge (kubernetes api/core/v1/types.go struct tags; Kubernetes docs
  "Update API Objects in Place Using kubectl patch", "Notes on the strategic merge patch";
  kustomize patchStrategicMerge). Other directives (`$retainKeys`, `$setElementOrder`,
  `$deleteFromPrimitiveList`, `$patch: replace`) are not played: refused, not approximated
- cluster-scoped kinds are the built-in ones a v1.36 API server serves cluster-scoped
  (`tierzero.sandbox.kube_builtin`, from the Kubernetes OpenAPI) plus those of CRDs in the build
- a directory without one gets a generated kustomization: every *.yaml/*.yml below it, walked
  in lexical order, that parses as Kubernetes YAML; a sub-directory with its own kustomization
  file is taken whole, not descended; a file that does not parse fails the run with
  "failed to decode Kubernetes YAML from <path>: <err>" (`generateKustomization`)
- a remote resource (a URL) fails: the sandbox is offline (real kustomize-controller would
  fetch it on every reconcile, allowed unless --no-remote-bases)
- a missing resource fails as kustomize does: "accumulating resources: accumulation
  err='accumulating resources from '<res>': open <path>: no such file or directory'"
  (kustomize v5.5.0 CLI wording observed; the controller's secure FS may word it differently)
- two objects with one id fail "may not add resource with an already registered id: <id>"
- build errors are reported as "kustomize build failed: <error>" (KC `build()`)
- SOPS: a resource with a top-level `sops` carrying a `mac` is decrypted with the age keys in
  the decryption Secret (every data key ending `.agekey`); without `spec.decryption` it fails
  "<Kind>/<ns>/<name> is SOPS encrypted, configuring decryption is required for this secret to
  be reconciled"; a missing Secret fails `secrets "<name>" not found`; a failed decryption is
  "decryption failed for '<Kind>.<version>.<group|[noGrp]>/<name>': failed to decrypt and
  format '<ns>/<name>' Secret data: cannot get sops data key: <sops's error>" (KC decryptor;
  the detail is the sops 3.11 CLI's, which embeds age 1.3 and words it as age 1.3 does)
"""

from __future__ import annotations

import base64
import copy
import json
import os
import posixpath
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tierzero.sandbox.kube_builtin import BUILTIN

KUSTOMIZE_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
PLAYED_FIELDS = {"apiVersion", "kind", "metadata", "resources", "namespace", "patches", "buildMetadata"}
CLUSTER_SCOPED = frozenset(kind for (_, kind), (_, namespaced) in BUILTIN.items() if not namespaced)
BUILTIN_KINDS = frozenset(kind for _, kind in BUILTIN)
# list field -> patchMergeKey of the lists kubernetes tags patchStrategy "merge" (api/core/v1/types.go)
MERGE_KEYS = {"containers": "name", "initContainers": "name", "ephemeralContainers": "name", "env": "name", "volumes": "name",
              "imagePullSecrets": "name", "volumeMounts": "mountPath"}


class BuildError(Exception):
    """A failed build; `reason` is the Ready reason the controller gives it."""

    def __init__(self, message: str, reason: str = "BuildFailed") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class Resource:
    obj: dict[str, Any]
    file: str  # repository-relative, for messages

    @property
    def id(self) -> str:
        """kyaml resid: <Kind>.<version>.<group|[noGrp]>/<name>.<namespace|[noNs]>."""
        api = str(self.obj.get("apiVersion", ""))
        group, _, version = api.rpartition("/")
        meta = self.obj.get("metadata") or {}
        return f"{self.obj.get('kind')}.{version}.{group or '[noGrp]'}/{meta.get('name')}.{meta.get('namespace') or '[noNs]'}"


def _rel(root: Path, path: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _kustomization_file(directory: Path) -> Path | None:
    return next((directory / n for n in KUSTOMIZE_FILES if (directory / n).is_file()), None)


def _load_docs(path: Path, root: Path) -> list[Resource]:
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise BuildError(f"failed to decode Kubernetes YAML from {path}: {exc}") from None
    out = []
    for doc in docs:
        if not isinstance(doc, dict):
            raise BuildError(f"failed to decode Kubernetes YAML from {path}: a document is not a mapping")
        out.append(Resource(doc, _rel(root, path)))
    return out


def build(root: Path, path: str) -> list[Resource]:
    """The objects the Kustomization at `path` (relative to the artifact `root`) renders."""
    directory = (root / path).resolve()
    try:
        return _build_dir(directory, root.resolve())
    except BuildError as exc:
        if str(exc).startswith(("failed to decode", "kustomize build failed")):
            raise
        raise BuildError(f"kustomize build failed: {exc}", exc.reason) from None


def _build_dir(directory: Path, root: Path) -> list[Resource]:
    kfile = _kustomization_file(directory)
    if kfile is None:
        return _generated(directory, root)
    try:
        kust = yaml.safe_load(kfile.read_text()) or {}
    except yaml.YAMLError as exc:
        raise BuildError(f"invalid Kustomization: {exc}") from None
    unplayed = sorted(set(kust) - PLAYED_FIELDS)
    if unplayed:
        raise BuildError(f"{_rel(root, kfile)}: fields {', '.join(unplayed)} are not played by the sandbox's Flux stand-in")
    out: list[Resource] = []
    for res in kust.get("resources") or []:
        if "://" in str(res):
            raise BuildError(f"accumulating resources: {res}: remote resources are fetched from the internet, which the sandbox does not reach")
        target = (directory / str(res)).resolve()
        if target != root and root not in target.parents:
            raise BuildError(f"accumulating resources: '{res}' is outside the source artifact")
        if target.is_dir():
            if _kustomization_file(target) is None:
                raise BuildError(f"accumulating resources: accumulation err='accumulating resources from '{res}': unable to find one of "
                                 f"'kustomization.yaml', 'kustomization.yml' or 'Kustomization' in directory '{target}'")
            out.extend(_build_dir(target, root))
        elif target.is_file():
            out.extend(_load_docs(target, root))
        else:
            raise BuildError(f"accumulating resources: accumulation err='accumulating resources from '{res}': open {target}: no such file or directory'")
    namespace = kust.get("namespace")
    if namespace:
        custom_cluster = {o.obj["spec"]["names"]["kind"] for o in out if o.obj.get("kind") == "CustomResourceDefinition"
                          and (o.obj.get("spec") or {}).get("scope") == "Cluster" and (o.obj["spec"].get("names") or {}).get("kind")}
        for r in out:
            if r.obj.get("kind") not in CLUSTER_SCOPED | custom_cluster:
                r.obj.setdefault("metadata", {})["namespace"] = namespace
    for patch in kust.get("patches") or []:
        _patch(out, patch, directory, root)
    _unique(out)
    return out


def _generated(directory: Path, root: Path) -> list[Resource]:
    out: list[Resource] = []
    if not directory.is_dir():
        return out
    for entry in sorted(directory.iterdir(), key=lambda p: p.name):
        if entry.is_dir():
            out.extend(_build_dir(entry, root) if _kustomization_file(entry) else _generated(entry, root))
        elif entry.suffix in (".yaml", ".yml"):
            out.extend(r for r in _load_docs(entry, root) if r.obj.get("apiVersion") and r.obj.get("kind"))
    _unique(out)
    return out


def _unique(resources: list[Resource]) -> None:
    seen: set[str] = set()
    for r in resources:
        if r.id in seen:
            raise BuildError(f"may not add resource with an already registered id: {r.id}")
        seen.add(r.id)


def _matches(r: Resource, target: dict[str, Any]) -> bool:
    meta = r.obj.get("metadata") or {}
    group, _, version = str(r.obj.get("apiVersion", "")).rpartition("/")
    checks = {"kind": r.obj.get("kind"), "name": meta.get("name"), "namespace": meta.get("namespace"), "group": group, "version": version}
    return all(checks.get(k) == v for k, v in target.items() if k in checks)


def _merge(base: Any, patch: Any, builtin: bool = False) -> Any:
    """A strategic merge patch of `base` (see the module's rules); `builtin`: the object is a built-in kind."""
    if isinstance(base, dict) and isinstance(patch, dict):
        if "$patch" in patch or any(k.startswith(("$retainKeys", "$setElementOrder", "$deleteFromPrimitiveList")) for k in patch):
            raise BuildError(f"strategic merge directive {sorted(k for k in patch if k.startswith('$'))} is not played by the Flux stand-in")
        out = dict(base)
        for key, value in patch.items():
            merge_key = _merge_key(key, value + base[key]) if builtin and isinstance(value, list) and isinstance(base.get(key), list) else None
            if value is None:
                out[key] = None
            elif merge_key is not None:
                out[key] = _merge_list(base[key], value, merge_key)
            else:
                out[key] = _merge(base.get(key), value, builtin)
        return {k: v for k, v in out.items() if v is not None}
    return copy.deepcopy(patch)


def _merge_key(field: str, items: list[Any]) -> str | None:
    if field == "ports":  # container ports by containerPort, a Service's by port
        return "containerPort" if any(isinstance(i, dict) and "containerPort" in i for i in items) else "port"
    return MERGE_KEYS.get(field)


def _merge_list(base: list[Any], patch: list[Any], key: str) -> list[Any]:
    out = [copy.deepcopy(i) for i in base]
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            raise BuildError(f"strategic merge patch: a list item without its merge key '{key}'")
        at = next((n for n, old in enumerate(out) if isinstance(old, dict) and old.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            if at is not None:
                del out[at]
        elif at is None:
            out.append(copy.deepcopy(item))
        else:
            out[at] = _merge(out[at], item, True)
    return out


def _patch(resources: list[Resource], entry: dict[str, Any], directory: Path, root: Path) -> None:
    import jsonpatch

    text = entry.get("patch")
    if text is None and entry.get("path"):
        text = (directory / entry["path"]).read_text()
    body = yaml.safe_load(text or "")
    target = entry.get("target") or {}
    if isinstance(body, list):
        if not target:
            raise BuildError("a JSON 6902 patch needs a target")
        for r in resources:
            if _matches(r, target):
                try:
                    r.obj = jsonpatch.apply_patch(r.obj, body)
                except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
                    raise BuildError(f"unable to apply JSON 6902 patch to {r.id}: {exc}") from None
        return
    if not isinstance(body, dict):
        raise BuildError("a patch is a strategic merge patch (a mapping) or a JSON 6902 patch (a list)")
    if not target:
        meta = body.get("metadata") or {}
        target = {k: v for k, v in (("kind", body.get("kind")), ("name", meta.get("name")), ("namespace", meta.get("namespace"))) if v}
    hits = [r for r in resources if _matches(r, target)]
    if not hits:
        raise BuildError(f"no resource matches strategic merge patch target {target}")
    for r in hits:
        r.obj = _merge(r.obj, {k: v for k, v in body.items() if k not in ("apiVersion", "kind")} | {"metadata": {**(body.get("metadata") or {}), "name": r.obj["metadata"]["name"]}},
                       builtin=r.obj.get("kind") in BUILTIN_KINDS and r.obj.get("kind") != "CustomResourceDefinition")


def is_encrypted(obj: dict[str, Any]) -> bool:
    sops = obj.get("sops")
    return isinstance(sops, dict) and bool(sops.get("mac"))


def age_keys(secret: dict[str, Any]) -> str:
    """The age identities a decryption Secret carries (data keys ending `.agekey`)."""
    values = {k: base64.b64decode(v).decode(errors="replace") for k, v in (secret.get("data") or {}).items()}
    values.update(secret.get("stringData") or {})
    return "\n".join(v.strip() for k, v in sorted(values.items()) if k.endswith(".agekey"))


def decrypt(resource: Resource, keys: str) -> dict[str, Any]:
    """The resource decrypted with the real sops; BuildError worded as kustomize-controller's."""
    from tierzero.adapters.sops import find_sops

    obj = resource.obj
    meta = obj.get("metadata") or {}
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOPS_")}
    env.update(SOPS_AGE_KEY=keys, SOPS_DISABLE_VERSION_CHECK="1")
    proc = subprocess.run([find_sops(), "decrypt", "--input-type", "json", "--output-type", "json", "/dev/stdin"],
                          input=json.dumps(obj).encode(), capture_output=True, env=env, cwd="/", timeout=60)
    if proc.returncode != 0:
        detail = proc.stderr.decode(errors="replace").strip()
        group, _, version = str(obj.get("apiVersion", "")).rpartition("/")
        raise BuildError(f"decryption failed for '{obj.get('kind')}.{version}.{group or '[noGrp]'}/{meta.get('name')}': failed to decrypt "
                         f"and format '{meta.get('namespace', '')}/{meta.get('name')}' Secret data: cannot get sops data key: {detail}")
    out = json.loads(proc.stdout)
    out.pop("sops", None)
    return dict(out)


def where(resource: Resource) -> str:
    """<Kind>/<ns>/<name> as fluxcd/pkg ssa FmtUnstructured writes it."""
    meta = resource.obj.get("metadata") or {}
    ns = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{resource.obj.get('kind')}/{ns}{meta.get('name')}"


def in_tree(resource: Resource) -> str:
    return posixpath.normpath(resource.file)
