"""What the Kubernetes API stand-in refuses on a write, as the real API server does, for every
client (the HTTP handler in `tierzero.sandbox.kubernetes`, `KubeState.apply` for the Flux
stand-in, kustomize-controller's dry run). Each refusal is the `Status` the server sends.

Rules, each with its source (kubernetes v1.36, staging/src/k8s.io/apimachinery and pkg/apis):
- object names (422 Invalid, `<Kind>[.<group>] "<name>" is invalid: metadata.name: Invalid value: "<name>":
  <why>`; the kind is qualified by its group as GroupKind.String() writes it, apimachinery api/errors NewInvalid): a Namespace's name is a DNS-1123 label (core/validation ValidateNamespaceName =
  NameIsDNSLabel), a Service's a DNS-1035 label (ValidateServiceName = NameIsDNS1035Label), the
  RBAC kinds' a path segment (rbac/validation ValidateRBACName = path.IsValidPathSegmentName),
  every other kind's (custom resources included: apiextensions-apiserver customresource
  validator) a DNS-1123 subdomain; the texts are apimachinery util/validation/validation.go
  (dns1123LabelErrMsg, dns1035LabelErrMsg, dns1123SubdomainErrorMsg, RegexError, MaxLenError);
  several errors are listed in brackets (field.ErrorList.ToAggregate)
- a namespaced object in a namespace that does not exist: 404 NotFound `namespaces "<ns>" not
  found` (apiserver admission/plugin/namespace/lifecycle/admission.go, NamespaceLifecycle, on by default)
- an update whose metadata.resourceVersion is not the stored one: 409 Conflict `Operation
  cannot be fulfilled on <plural>[.<group>] "<name>": the object has been modified; please apply
  your changes to the latest version and try again` (apiserver registry/generic/registry/store.go
  Update, storage.NewConflictError / apimachinery api/errors NewConflict; api-concepts
  "Resource versions": optimistic concurrency)
"""

from __future__ import annotations

import re

_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_LABEL_RE = re.compile(f"^{_LABEL}$")
_SUBDOMAIN = _LABEL + r"(\." + _LABEL + ")*"
_SUBDOMAIN_RE = re.compile(f"^{_SUBDOMAIN}$")
_DNS1035 = "[a-z]([-a-z0-9]*[a-z0-9])?"
_DNS1035_RE = re.compile(f"^{_DNS1035}$")
LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an "
             f"alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '{_LABEL}')")
SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end "
                 f"with an alphanumeric character (e.g. 'example.com', regex used for validation is '{_SUBDOMAIN}')")
DNS1035_MSG = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end "
               f"with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '{_DNS1035}')")
PATH_SEGMENT_KINDS = frozenset({"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"})


class Refusal(Exception):
    """The API server's answer: HTTP `code`, Status `reason` and `message`."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message


def name_errors(kind: str, name: str) -> list[str]:
    """Why `name` is not a valid metadata.name for `kind` ([] when it is)."""
    if kind in PATH_SEGMENT_KINDS:
        if name in (".", ".."):
            return [f"may not be '{name}'"]
        return [f"may not contain '{c}'" for c in ("/", "%") if c in name]
    if kind == "Namespace":
        errs = ["must be no more than 63 characters"] if len(name) > 63 else []
        if not _LABEL_RE.match(name):
            errs.append("must not contain dots" if _SUBDOMAIN_RE.match(name) else LABEL_MSG)
        return errs
    if kind == "Service":
        return (["must be no more than 63 characters"] if len(name) > 63 else []) + ([DNS1035_MSG] if not _DNS1035_RE.match(name) else [])
    return (["must be no more than 253 characters"] if len(name) > 253 else []) + ([SUBDOMAIN_MSG] if not _SUBDOMAIN_RE.match(name) else [])


def invalid_name(kind: str, name: str, group: str = "") -> Refusal | None:
    """`group`: the kind's API group ("" for the core group)."""
    errs = [f'metadata.name: Invalid value: "{name}": {e}' for e in name_errors(kind, name)]
    if not name:  # apimachinery api/validation/objectmeta.go ValidateObjectMetaAccessor
        errs = ["metadata.name: Required value: name or generateName is required"]
    if not errs:
        return None
    detail = errs[0] if len(errs) == 1 else "[" + ", ".join(errs) + "]"
    return Refusal(422, "Invalid", f'{qualified(kind, group)} "{name}" is invalid: {detail}')


def qualified(name: str, group: str) -> str:
    """`deployments` + `apps` -> `deployments.apps`; the core group adds nothing (schema.GroupKind/GroupResource String)."""
    return f"{name}.{group}" if group else name


def missing_namespace(namespace: str) -> Refusal:
    return Refusal(404, "NotFound", f'namespaces "{namespace}" not found')


def conflict(plural: str, group: str, name: str) -> Refusal:
    return Refusal(409, "Conflict", f'Operation cannot be fulfilled on {qualified(plural, group)} "{name}": the object has been modified; '
                   "please apply your changes to the latest version and try again")


def stale(sent: object, stored: object) -> bool:
    """Whether an update carries a resourceVersion that is not the stored one (none sent: unconditional)."""
    return sent not in (None, "") and str(sent) != str(stored)
