"""What the Kubernetes stand-in serves: the built-in resources (group, version, kind, plural,
scope) and the custom ones each stored CustomResourceDefinition adds, plus JSON merge patch.

Rules, each from the real API server:
- a custom resource is served only while a CRD names its group, plural and a served version;
  before that its path is 404 NotFound "the server could not find the requested resource"
  (Kubernetes docs, "Extend the Kubernetes API with CustomResourceDefinitions": the new
  RESTful path exists once the CRD is created; `spec.versions[].served`)
- built-in kinds, their plurals and scopes: what a stock v1.36 API server serves
  (`kube_builtin`, from the Kubernetes OpenAPI); any other path in a built-in group is 404 as
  for an unknown custom one
- PATCH with `application/merge-patch+json` is RFC 7386: objects merge key by key, `null`
  deletes a key, any other value (lists included) replaces
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from tierzero.sandbox.kube_builtin import BUILTIN  # (apiVersion, kind) -> (plural, namespaced)

_SERVED = {("/api/v1" if api == "v1" else f"/apis/{api}", plural) for (api, _), (plural, _) in BUILTIN.items()}
CRD_KEY = ("/apis/apiextensions.k8s.io/v1", "", "customresourcedefinitions")


@dataclass(frozen=True)
class Resource:
    """One served resource: where its objects live and what they are called."""

    api_version: str
    kind: str
    plural: str
    namespaced: bool

    @property
    def prefix(self) -> str:
        return "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"


def group_of(prefix: str) -> tuple[str, str]:
    """`/api/v1` -> ("", "v1"); `/apis/apps/v1` -> ("apps", "v1")."""
    if prefix == "/api/v1":
        return "", "v1"
    _, _, group, version = prefix.split("/", 3)
    return group, version


def custom_resources(crds: dict[str, dict[str, Any]]) -> list[Resource]:
    out = []
    for crd in crds.values():
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        if not (spec.get("group") and names.get("kind") and names.get("plural")):
            continue
        for version in spec.get("versions") or []:
            if version.get("served") and version.get("name"):
                out.append(Resource(f"{spec['group']}/{version['name']}", names["kind"], names["plural"], spec.get("scope") != "Cluster"))
    return out


def resource_for(api_version: str, kind: str, crds: dict[str, dict[str, Any]]) -> Resource | None:
    """The resource serving (apiVersion, kind), or None: "no matches for kind" in the real API."""
    builtin = BUILTIN.get((api_version, kind))
    if builtin is not None:
        return Resource(api_version, kind, *builtin)
    return next((r for r in custom_resources(crds) if r.api_version == api_version and r.kind == kind), None)


def serves(prefix: str, plural: str, crds: dict[str, dict[str, Any]]) -> bool:
    """Whether a path's resource exists: a built-in one a stock server serves (`kube_builtin`),
    or a custom one while a CRD serves that version and plural."""
    if (prefix, plural) in _SERVED:
        return True
    return any(r.prefix == prefix and r.plural == plural for r in custom_resources(crds))


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch of `target` by `patch` (a new value; neither is changed)."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def node_object(name: str, ip: str = "", role: str = "worker", ready: bool = True, kubelet: str = "v1.36.2",
                os_image: str = "Talos (sandbox)") -> dict[str, Any]:
    labels = {"kubernetes.io/hostname": name}
    if role == "controlplane":
        labels["node-role.kubernetes.io/control-plane"] = ""
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": labels, "uid": str(uuid.uuid4()), "creationTimestamp": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")},
        "status": {
            "conditions": [{"type": "Ready", "status": "True" if ready else "False", "reason": "KubeletReady", "message": "kubelet is posting ready status"}],
            "addresses": [{"type": "InternalIP", "address": ip}] if ip else [],
            "nodeInfo": {"kubeletVersion": kubelet, "osImage": os_image, "architecture": "arm64",
                         "bootID": "", "containerRuntimeVersion": "containerd://2.0", "kernelVersion": "6.12",
                         "kubeProxyVersion": "", "machineID": "", "operatingSystem": "linux", "systemUUID": ""},
        },
    }
