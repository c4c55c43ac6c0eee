"""Check machine configs against the official JSON schema of their contract, plus semantic rules."""

from __future__ import annotations

import copy
import functools
import ipaddress
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tierzero.render.talos.contract import Contract
from tierzero.render.talos.modes import Mode, mode_findings
from tierzero.render.talos.patches import document_key
from tierzero.render.talos.yamlio import Document

SCHEMA_DIR_ENV = "TIERZERO_TALOS_SCHEMA_DIR"
_REPO_SHARED_SCHEMAS = Path(__file__).resolve().parents[4].parent / "shared" / "oracles" / "talos" / "schemas"


@dataclass(frozen=True)
class SchemaException:
    """Something talosctl itself writes that the official schema rejects."""

    kind: str  # "" is the v1alpha1 document
    field: str
    reason: str


# The one list of deliberate departures from the published schemas.
TALOSCTL_SCHEMA_EXCEPTIONS: tuple[SchemaException, ...] = (
    SchemaException("", "persist", "talosctl writes `persist: true`; the schema has no such property"),
    SchemaException(
        "UnattendedInstallConfig", "kind", "the schema spells the kind `UnattendedInstall`, Talos registers `UnattendedInstallConfig`"
    ),
)
_KIND_ALIASES = {"UnattendedInstallConfig": "UnattendedInstall"}
_TOKEN = re.compile(r"^[0-9a-z]{6}\.[0-9a-z]{16}$")


@dataclass(frozen=True)
class Finding:
    document: int
    kind: str
    path: str
    message: str

    def __str__(self) -> str:
        where = f"document {self.document} ({self.kind or 'v1alpha1'})"
        return f"{where}{' at ' + self.path if self.path else ''}: {self.message}"


def find_schema(contract: Contract, schema_dir: Path | None = None) -> Path | None:
    candidates = [schema_dir, Path(os.environ[SCHEMA_DIR_ENV]) if os.environ.get(SCHEMA_DIR_ENV) else None]
    candidates.append(_REPO_SHARED_SCHEMAS)
    for directory in candidates:
        if directory is None:
            continue
        path = directory if directory.is_file() else directory / f"{contract}.config.schema.json"
        if path.is_file():
            return path
    return None


@functools.lru_cache(maxsize=8)
def _schema_validators(path: str) -> dict[str | None, Any]:
    from jsonschema import Draft202012Validator

    schema = json.loads(Path(path).read_text())
    defs = schema["$defs"]
    validators: dict[str | None, Any] = {}
    for ref in schema["oneOf"]:
        name = ref["$ref"].rsplit("/", 1)[-1]
        kind = (defs[name].get("properties", {}).get("kind", {}).get("enum") or [None])[0]
        validators[kind] = Draft202012Validator({"$ref": f"#/$defs/{name}", "$defs": defs})
    return validators


def schema_findings(docs: list[Document], schema_path: Path) -> list[Finding]:
    validators = _schema_validators(str(schema_path))
    findings: list[Finding] = []
    for index, doc in enumerate(docs):
        kind, _ = document_key(doc)
        candidate = _without_exceptions(doc, kind)
        validator = validators.get(_KIND_ALIASES.get(kind, kind) or None)
        if validator is None:
            findings.append(Finding(index, kind, "", f"unknown document kind {kind!r} for this contract"))
            continue
        for error in sorted(validator.iter_errors(candidate), key=lambda e: list(e.absolute_path)):
            path = "." + ".".join(str(p) for p in error.absolute_path) if error.absolute_path else ""
            findings.append(Finding(index, kind, path, error.message))
    return findings


def _without_exceptions(doc: Document, kind: str) -> Document:
    candidate = copy.deepcopy(doc)
    for exception in TALOSCTL_SCHEMA_EXCEPTIONS:
        if exception.kind != kind:
            continue
        if exception.field == "kind":
            candidate["kind"] = _KIND_ALIASES[kind]
        else:
            candidate.pop(exception.field, None)
    return candidate


def semantic_findings(docs: list[Document], contract: Contract) -> list[Finding]:
    findings: list[Finding] = []
    by_kind: dict[str, list[tuple[int, Document]]] = {}
    seen: set[tuple[str, str | None]] = set()
    for index, doc in enumerate(docs):
        if not isinstance(doc, dict):
            findings.append(Finding(index, "", "", "a document must be a mapping"))
            continue
        key = document_key(doc)
        if key in seen:
            findings.append(Finding(index, key[0], "", f"duplicate document {key[0]} {key[1] or ''}".rstrip()))
        seen.add(key)
        by_kind.setdefault(key[0], []).append((index, doc))
    legacy = by_kind.get("", [])
    if len(legacy) != 1:
        return [*findings, Finding(0, "", "", "exactly one v1alpha1 document (version: v1alpha1) is required")]
    index, config = legacy[0]
    machine = config.get("machine") or {}
    cluster = config.get("cluster") or {}
    role = machine.get("type")
    if role not in ("controlplane", "worker", "init"):
        findings.append(Finding(index, "", ".machine.type", f"must be controlplane or worker, not {role!r}"))
    if not _TOKEN.match(str(machine.get("token", ""))):
        findings.append(Finding(index, "", ".machine.token", "must look like abcdef.0123456789abcdef"))
    if role in ("controlplane", "init"):
        if not (machine.get("ca") or {}).get("key"):
            findings.append(Finding(index, "", ".machine.ca.key", "a control plane needs the OS CA key"))
        findings += _controlplane_ca(index, cluster, by_kind)
    findings += _endpoint(index, cluster, by_kind)
    findings += _subnets(index, cluster, by_kind)
    findings += _conflicts(index, machine, cluster, by_kind, contract)
    return findings


def _controlplane_ca(index: int, cluster: dict[str, Any], by_kind: dict[str, list[tuple[int, Document]]]) -> list[Finding]:
    for doc_index, doc in by_kind.get("KubeAPIServerCAConfig", []):
        if not (doc.get("issuingCA") or {}).get("key"):
            return [Finding(doc_index, "KubeAPIServerCAConfig", ".issuingCA.key", "a control plane needs the cluster CA key")]
        return []
    if not (cluster.get("ca") or {}).get("key"):
        return [Finding(index, "", ".cluster.ca.key", "a control plane needs the cluster CA key")]
    return []


def _endpoint(index: int, cluster: dict[str, Any], by_kind: dict[str, list[tuple[int, Document]]]) -> list[Finding]:
    places = [(index, "", ".cluster.controlPlane.endpoint", (cluster.get("controlPlane") or {}).get("endpoint"))]
    places += [(i, "KubeClusterConfig", ".endpoint", d.get("endpoint")) for i, d in by_kind.get("KubeClusterConfig", [])]
    findings = []
    for doc_index, kind, path, value in places:
        if value is None:
            continue
        parts = urlsplit(str(value))
        if parts.scheme != "https" or not parts.hostname:
            findings.append(Finding(doc_index, kind, path, f"{value!r} is not an https URL"))
    if all(value is None for *_, value in places):
        findings.append(Finding(index, "", ".cluster.controlPlane.endpoint", "the cluster endpoint is missing"))
    return findings


def _subnets(index: int, cluster: dict[str, Any], by_kind: dict[str, list[tuple[int, Document]]]) -> list[Finding]:
    network = cluster.get("network") or {}
    places = [(index, "", ".cluster.network", network)]
    places += [(i, "KubeNetworkConfig", "", d) for i, d in by_kind.get("KubeNetworkConfig", [])]
    findings = []
    for doc_index, kind, prefix, holder in places:
        for field_name in ("podSubnets", "serviceSubnets"):
            for position, cidr in enumerate(holder.get(field_name) or []):
                try:
                    ipaddress.ip_network(str(cidr), strict=True)
                except ValueError as exc:
                    path = f"{prefix}.{field_name}.{position}"
                    findings.append(Finding(doc_index, kind, path, f"invalid CIDR {cidr!r}: {exc}"))
    return findings


# A typed document and the v1alpha1 field it replaces; Talos refuses a config that sets both.
# The number is the first minor version where the conflict applies.
_REPLACED_FIELDS = (
    ("KubeNetworkConfig", ("cluster", "network"), 14),
    ("KubeletConfig", ("machine", "kubelet"), 14),
    ("KubePrismConfig", ("machine", "features", "kubePrism"), 14),
    ("KubeClusterConfig", ("cluster", "clusterName"), 14),
    ("HostnameConfig", ("machine", "network", "hostname"), 12),
    ("ResolverConfig", ("machine", "network", "nameservers"), 12),
    ("ResolverConfig", ("machine", "features", "hostDNS"), 14),
    ("SysctlConfig", ("machine", "sysctls"), 14),
    ("UnattendedInstallConfig", ("machine", "install"), 14),
    ("DiscoveryServiceConfig", ("cluster", "discovery"), 14),
)


def _conflicts(
    index: int,
    machine: dict[str, Any],
    cluster: dict[str, Any],
    by_kind: dict[str, list[tuple[int, Document]]],
    contract: Contract,
) -> list[Finding]:
    root = {"machine": machine, "cluster": cluster}
    findings = []
    for kind, path, since in _REPLACED_FIELDS:
        if kind not in by_kind or not contract.at_least(since):
            continue
        node: Any = root
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        if node not in (None, {}, []):
            dotted = "." + ".".join(path)
            findings.append(Finding(index, "", dotted, f"is already set by the {kind} document; keep only one"))
    return findings


def validate_documents(docs: list[Document], contract: Contract, schema_path: Path | None, mode: Mode | None = None) -> list[Finding]:
    """Schema, semantic and (with `mode`) Talos' runtime-mode findings; empty when the config is valid."""
    findings = semantic_findings(docs, contract)
    if schema_path is not None:
        findings = schema_findings(docs, schema_path) + findings
    if mode is not None:
        findings += [Finding(*problem) for problem in mode_findings(docs, contract, mode)[0]]
    return findings
