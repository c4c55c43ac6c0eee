"""The files of a GitOps tree before encryption: manifests by path, Secrets kept apart (they are
encrypted before anything is returned), and a kustomization.yaml per directory."""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field

from tierzero.render.sealing import SECRET_REGEX
from tierzero.render.gitops.component import Manifest
from tierzero.render.gitops.yamlout import dump, dump_all

KUSTOMIZE_API = "kustomize.config.k8s.io/v1beta1"
SECRET_SUFFIX = ".sops.yaml"


@dataclass
class Tree:
    docs: dict[str, list[Manifest]] = field(default_factory=dict)
    secrets: dict[str, Manifest] = field(default_factory=dict)
    raw: dict[str, bytes] = field(default_factory=dict)

    def add(self, path: str, *manifests: Manifest) -> None:
        if manifests:
            self.docs.setdefault(path, []).extend(manifests)

    def add_secret(self, directory: str, manifest: Manifest) -> str:
        meta = manifest["metadata"]
        path = posixpath.join(directory, f"{meta['namespace']}.{meta['name']}{SECRET_SUFFIX}")
        if path in self.secrets:
            raise ValueError(f"two Secrets render to {path}")
        self.secrets[path] = manifest
        return path

    def files_in(self, directory: str) -> list[str]:
        prefix = directory.rstrip("/") + "/"
        names = {p[len(prefix):] for p in [*self.docs, *self.secrets, *self.raw] if p.startswith(prefix)}
        return sorted(n for n in names if "/" not in n and n != "kustomization.yaml")

    def kustomize(self, directory: str, *, resources: list[str] | None = None, namespace: str | None = None) -> None:
        """Write DIR/kustomization.yaml listing every file of DIR (or the given resources)."""
        doc: Manifest = {"apiVersion": KUSTOMIZE_API, "kind": "Kustomization"}
        if namespace:
            doc["namespace"] = namespace
        doc["resources"] = resources if resources is not None else self.files_in(directory)
        self.raw[posixpath.join(directory, "kustomization.yaml")] = dump(doc).encode()

    def plain_files(self) -> dict[str, bytes]:
        out = dict(self.raw)
        for path, manifests in self.docs.items():
            out[path] = dump_all(manifests)
        return out

    def secret_plaintexts(self) -> dict[str, bytes]:
        return {path: dump(m).encode() for path, m in self.secrets.items()}


USER_DIRECTORIES = ("apps",)  # where users add their own manifests and Secrets


def top_directories(tree: Tree) -> list[str]:
    """The repository's top-level directories: what the tree holds, plus where users add their own files."""
    paths = [*tree.docs, *tree.secrets, *tree.raw]
    return sorted({p.split("/", 1)[0] for p in paths if "/" in p} | set(USER_DIRECTORIES))


def sops_config(recipient: str, directories: list[str]) -> bytes:
    """`.sops.yaml` at the tree root: what `sops` run in the repository encrypts, and how.

    sops matches `path_regex` against the file's path relative to the `.sops.yaml` (getsops/sops v3.11.0
    config/config.go, parseCreationRuleForFile) and uses the first rule that matches. One rule, anchored to the
    directories the repository holds: `*.sops.yaml` files are Kubernetes objects, so only `data` and `stringData`
    are encrypted and apiVersion, kind and metadata stay readable for kustomize and Flux (Flux docs, "Manage
    Kubernetes secrets with SOPS": `encrypted_regex: ^(data|stringData)$`). Any other path matches no rule, and
    sops refuses it ("no matching creation rules found") instead of encrypting it whole."""
    alternatives = "|".join(re.escape(d) for d in directories)
    doc = {
        "creation_rules": [
            {"path_regex": rf"^({alternatives})/.+\.sops\.ya?ml$", "encrypted_regex": SECRET_REGEX, "age": recipient},
        ]
    }
    return dump(doc).encode()
