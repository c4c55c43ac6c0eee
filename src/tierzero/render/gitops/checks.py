"""What must hold of a GitOps tree before it is pushed: checks on bytes, no I/O.

`plaintext_secrets` finds what must never reach Git in the clear: a Secret whose data or
stringData values are not SOPS-encrypted, private key blocks (PEM, OpenSSH, PGP), age
identities, and provider tokens. It names the file, the object or line, and never the value.

`tree_problems` finds what Flux would refuse after the push, so the push can refuse first:
documents without apiVersion/kind/metadata.name, kustomization.yaml resources that do not
exist, a Flux Kustomization whose path is not in the tree or whose dependsOn names nothing,
and SOPS files the cluster's key cannot decrypt.
"""

from __future__ import annotations

import functools
import posixpath
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

# libyaml's parser when PyYAML was built with it: the same documents, several times faster (a
# no-op deploy parses the whole tree before its push).
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

KUSTOMIZE_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")  # kustomize's accepted names (konfig.RecognizedKustomizationFileNames)
FLUX_KUSTOMIZE = "kustomize.toolkit.fluxcd.io/"
_ENC = re.compile(r"ENC\[[A-Z0-9_]+,data:[^\]]*\]")
# Each: (what it is, pattern). Sources: the formats' own specs (RFC 7468 for PEM labels,
# age-encryption.org/v1 for AGE-SECRET-KEY-1, the providers' documented token prefixes).
SECRET_SHAPES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("a private key block", re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")),
    ("an age identity (AGE-SECRET-KEY-1...)", re.compile(r"AGE-SECRET-KEY-1[0-9A-Z]{20,}")),
    ("a GitHub token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{40,})")),
    ("a GitLab token", re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}")),
    ("a Slack token", re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}")),
    ("an AWS access key id", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("a Tailscale key", re.compile(r"\btskey-[a-z]+-[A-Za-z0-9]{8,}-[A-Za-z0-9]{8,}")),
    ("a Google API key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b")),
    ("a JSON Web Token", re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}")),
)


@dataclass(frozen=True)
class Problem:
    path: str
    where: str  # the object ("Secret kube-system/x") or the line ("line 12")
    message: str

    def line(self) -> str:
        return f"{self.path}: {self.where}: {self.message}"


@functools.lru_cache(maxsize=256)
def _docs(path: str, data: bytes) -> tuple[list[Any], Problem | None]:
    """The file's documents (parsed once for both checks: callers only read them), or why it is not YAML."""
    try:
        return [d for d in yaml.load_all(data, Loader=_LOADER) if d is not None], None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "(file)"
        return [], Problem(path, where, f"not valid YAML: {getattr(exc, 'problem', None) or exc}")
    except UnicodeDecodeError:
        return [], None


def _is_yaml(path: str) -> bool:
    return path.endswith((".yaml", ".yml")) or posixpath.basename(path) == "Kustomization"


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _obj(doc: Mapping[str, Any]) -> str:
    meta = _mapping(doc.get("metadata"))
    ns = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{doc.get('kind', '?')} {ns}{meta.get('name', '?')}"


def plaintext_secrets(files: Mapping[str, bytes]) -> list[Problem]:
    """Every plaintext secret in the tree; [] when there is none."""
    found: list[Problem] = []
    for path, data in sorted(files.items()):
        text = data.decode("utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), start=1):
            clean = _ENC.sub("", line)
            for what, pattern in SECRET_SHAPES:
                if pattern.search(clean):
                    found.append(Problem(path, f"line {number}", f"holds {what} in plaintext"))
        if not _is_yaml(path):
            continue
        docs, _ = _docs(path, data)
        for doc in docs:
            if not isinstance(doc, dict) or doc.get("kind") != "Secret":
                continue
            plain = sorted(f"{field}.{key}" for field in ("data", "stringData") if isinstance(doc.get(field), dict)
                           for key, value in doc[field].items() if value not in (None, "") and not _ENC.fullmatch(str(value)))
            if plain:
                found.append(Problem(path, _obj(doc), f"unencrypted values ({', '.join(plain)}): encrypt the file with sops "
                                     "(tierzero renders every Secret encrypted; this one was changed or added by hand)"))
    return found


def _resource_exists(directory: str, res: str, files: Mapping[str, bytes]) -> bool:
    target = posixpath.normpath(posixpath.join(directory, res))
    if target in files:
        return True
    return any(posixpath.join(target, name) in files for name in KUSTOMIZE_FILES)


def _dir_exists(directory: str, files: Iterable[str]) -> bool:
    if directory in ("", "."):
        return True
    prefix = directory.rstrip("/") + "/"
    return any(p.startswith(prefix) for p in files)


def tree_problems(files: Mapping[str, bytes], *, recipients: Iterable[str] = (), source: str = "flux-system") -> list[Problem]:
    """What Flux would refuse in this tree: see the module docstring. `recipients`: the age
    recipients the cluster can decrypt (empty: not checked); `source`: the GitRepository that
    syncs this repository."""
    problems: list[Problem] = []
    wanted = set(recipients)
    flux_objects: list[tuple[str, dict[str, Any]]] = []
    for path, data in sorted(files.items()):
        if not _is_yaml(path):
            continue
        docs, error = _docs(path, data)
        if error is not None:
            problems.append(error)
            continue
        name = posixpath.basename(path)
        if name in KUSTOMIZE_FILES:
            doc = docs[0] if docs and isinstance(docs[0], dict) else {}
            for res in doc.get("resources") or []:
                if isinstance(res, str) and not re.match(r"^[a-z]+://", res) and not _resource_exists(posixpath.dirname(path), res, files):
                    problems.append(Problem(path, f"resources: {res}", "does not exist in the tree (kustomize build would fail)"))
            continue
        if name == ".sops.yaml":
            continue
        for doc in docs:
            problems.extend(_object_problems(path, doc, wanted))
            if isinstance(doc, dict) and str(doc.get("apiVersion", "")).startswith(FLUX_KUSTOMIZE) and doc.get("kind") == "Kustomization":
                flux_objects.append((path, doc))
    names = {(d.get("metadata", {}).get("namespace") or "default", d.get("metadata", {}).get("name")) for _, d in flux_objects}
    for path, doc in flux_objects:
        problems.extend(_kustomization_problems(path, doc, files, names, source))
    return problems


def _object_problems(path: str, doc: Any, recipients: set[str]) -> list[Problem]:
    if not isinstance(doc, dict):
        return [Problem(path, "a document", "is not a Kubernetes object (a mapping with apiVersion, kind and metadata)")]
    missing = [f for f in ("apiVersion", "kind") if not isinstance(doc.get(f), str) or not doc.get(f)]
    meta = doc.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    if not isinstance(name, str) or not name:
        missing.append("metadata.name")
    out = []
    if missing:
        out.append(Problem(path, _obj(doc), f"missing {', '.join(missing)}: the API server refuses an object without them"))
    elif isinstance(name, str) and ("/" in name or name in (".", "..")):
        out.append(Problem(path, _obj(doc), f"metadata.name {name!r} is not a valid object name"))
    sops = doc.get("sops")
    if isinstance(sops, dict) and recipients:
        have = {str(a.get("recipient")) for a in sops.get("age") or [] if isinstance(a, dict)}
        if not have & recipients:
            out.append(Problem(path, _obj(doc), f"is encrypted to {', '.join(sorted(have)) or 'no age recipient'}, not to the key the "
                               f"cluster's sops-age Secret holds ({', '.join(sorted(recipients))}): Flux could not decrypt it"))
    return out


def _kustomization_problems(path: str, doc: dict[str, Any], files: Mapping[str, bytes], names: set[tuple[str, Any]], source: str) -> list[Problem]:
    out = []
    spec = _mapping(doc.get("spec"))
    ns = _mapping(doc.get("metadata")).get("namespace") or "default"
    ref = spec.get("sourceRef") or {}
    if ref.get("kind") == "GitRepository" and ref.get("name") == source:
        target = posixpath.normpath(str(spec.get("path") or "."))
        if target.startswith("../") or target == ".." or not _dir_exists(target, files):
            out.append(Problem(path, _obj(doc), f"spec.path {spec.get('path')} is not a directory of the tree "
                               "(Flux would report 'kustomization path not found')"))
    for dep in spec.get("dependsOn") or []:
        key = (dep.get("namespace") or ns, dep.get("name"))
        if key not in names:
            out.append(Problem(path, _obj(doc), f"dependsOn {key[0]}/{key[1]} names no Kustomization in the tree"))
    return out
