"""Check a rendered tree: built-in objects against the Kubernetes schemas (kubernetes-validate,
strict), custom resources against strict CRD JSON schemas, kustomization.yaml resources, and
no placeholder left anywhere."""

from __future__ import annotations

import json
import os
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

KUBERNETES_SCHEMA_VERSION = "1.36.0"  # pinned; kubernetes-validate carries schemas up to 1.37
CRD_ENV = "TIERZERO_CRD_SCHEMAS"
PLACEHOLDERS = re.compile(r"\b(TODO|FIXME|REPLACE_ME|CHANGEME|CHANGE_ME|PLACEHOLDER)\b|<[a-z][a-z -]*(here|id|secret|token)>", re.I)
_ENC = re.compile(r"ENC\[[^\]]*\]")


@dataclass
class ValidationReport:
    problems: list[str] = field(default_factory=list)
    checked: int = 0
    unverified: list[str] = field(default_factory=list)  # "path: apiVersion/Kind" with no schema known

    @property
    def ok(self) -> bool:
        return not self.problems


def default_crd_schemas() -> Path | None:
    """$TIERZERO_CRD_SCHEMAS, else ../shared/oracles/crds beside the repository when present."""
    env = os.environ.get(CRD_ENV)
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parents[3]
    candidate = repo.parent / "shared" / "oracles" / "crds"
    return candidate if candidate.is_dir() else None


def load_tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)).replace(os.sep, "/"): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def validate_tree(
    files: Mapping[str, bytes] | Path,
    *,
    crd_schemas: Path | None = None,
    kubernetes_version: str = KUBERNETES_SCHEMA_VERSION,
    supplied: Mapping[str, str] | None = None,
) -> ValidationReport:
    """`supplied`: files a kustomization lists that are added later, path -> why (Flux's
    gotk-components.yaml when no checked copy is at hand): reported unverified, not missing."""
    tree = load_tree(files) if isinstance(files, Path) else dict(files)
    report = ValidationReport()
    for path, why in sorted((supplied or {}).items()):
        if path not in tree:
            report.unverified.append(f"{path}: {why}")
    schemas = crd_schemas if crd_schemas is not None else default_crd_schemas()
    for path, data in sorted(tree.items()):
        if not path.endswith((".yaml", ".yml")):
            continue
        try:
            docs = [d for d in yaml.safe_load_all(data) if d is not None]
        except yaml.YAMLError as exc:
            report.problems.append(f"{path}: not YAML: {exc}")
            continue
        _placeholders(path, docs, report)
        name = posixpath.basename(path)
        if name == "kustomization.yaml":
            _kustomization(path, docs[0] if docs else {}, {**tree, **{p: b"" for p in supplied or {}}}, report)
            continue
        if name == ".sops.yaml":
            continue
        for doc in docs:
            _object(path, doc, schemas, kubernetes_version, report)
    return report


def _placeholders(path: str, docs: list[Any], report: ValidationReport) -> None:
    for doc in docs:
        plain = {k: v for k, v in doc.items() if k != "sops"} if isinstance(doc, dict) else doc
        text = _ENC.sub("", json.dumps(plain))
        match = PLACEHOLDERS.search(text)
        if match:
            report.problems.append(f"{path}: placeholder {match.group(0)!r}")


def _kustomization(path: str, doc: Any, tree: Mapping[str, bytes], report: ValidationReport) -> None:
    directory = posixpath.dirname(path)
    resources = doc.get("resources", []) if isinstance(doc, dict) else []
    listed = set()
    for res in resources:
        if re.match(r"^https?://", res):
            continue
        target = posixpath.normpath(posixpath.join(directory, res))
        listed.add(target)
        if target not in tree and f"{target}/kustomization.yaml" not in tree:
            report.problems.append(f"{path}: resource {res!r} does not exist")
    for other in tree:
        if posixpath.dirname(other) == directory and other != path and other.endswith((".yaml", ".yml")) and other not in listed:
            report.problems.append(f"{path}: does not list {posixpath.basename(other)}")


def _is_builtin(api_version: str) -> bool:
    group = api_version.split("/")[0] if "/" in api_version else ""
    return group == "" or "." not in group or group.endswith(".k8s.io")


def _object(path: str, doc: Any, schemas: Path | None, version: str, report: ValidationReport) -> None:
    if not isinstance(doc, dict) or "apiVersion" not in doc or "kind" not in doc:
        report.problems.append(f"{path}: a document without apiVersion/kind")
        return
    obj = {k: v for k, v in doc.items() if k != "sops"}  # encrypted values keep their shape
    api, kind = str(obj["apiVersion"]), str(obj["kind"])
    where = f"{path}: {kind} {obj.get('metadata', {}).get('name', '?')}"
    if not obj.get("metadata", {}).get("name"):
        report.problems.append(f"{where}: metadata.name missing")
    report.checked += 1
    if _is_builtin(api):
        import kubernetes_validate

        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            report.unverified.append(f"{path}: {api}/{kind}")
        except kubernetes_validate.ValidationError as exc:
            report.problems.append(f"{where}: {_path(exc.absolute_path)}: {exc.message}")
        return
    validator = _crd_validator(str(schemas) if schemas else "", api, kind)
    if validator is None:
        report.unverified.append(f"{path}: {api}/{kind}")
        return
    for err in sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path))):
        report.problems.append(f"{where}: {_path(err.absolute_path)}: {err.message}")


def _path(parts: Any) -> str:
    return ".".join(str(p) for p in parts) or "(object)"


@lru_cache(maxsize=None)
def _crd_validator(schemas: str, api_version: str, kind: str):  # -> jsonschema validator | None
    if not schemas or "/" not in api_version:
        return None
    group, version = api_version.split("/", 1)
    file = Path(schemas) / group / f"{kind.lower()}_{version}.json"
    if not file.is_file():
        return None
    import jsonschema

    schema = json.loads(file.read_text())
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    return cls(schema)
