"""Issue 17 case 4: the rendered `.sops.yaml`, exercised with the real `sops` over every rule.

Right values: sops picks the first creation rule whose path_regex matches the path relative to `.sops.yaml`
(getsops/sops v3.11.0 config/config.go, parseCreationRuleForFile) and refuses a file no rule matches; Flux decrypts
Kubernetes objects whose `data`/`stringData` alone are encrypted (Flux docs, "Manage Kubernetes secrets with SOPS":
`encrypted_regex: ^(data|stringData)$`), so apiVersion, kind and metadata must stay plaintext for kustomize."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tierzero.adapters.sops import find_sops

from .conftest import blueprint, make_project

SECRET = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x", "namespace": "apps"},
          "type": "Opaque", "stringData": {"password": "hunter2"}}
CONFIG = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "y", "namespace": "apps"}, "data": {"k": "v"}}

# Paths a user or tierzero puts in the repository: each must be encrypted by a rule, Kubernetes fields readable.
MATCHED = [
    "apps/talos/x.sops.yaml",  # the example: a `talos` folder inside apps/
    "apps/talos/nested/deeper/z.sops.yml",
    "apps/demo/secret.sops.yaml",
    "infrastructure/configs/extra.sops.yaml",
    "clusters/main/flux-system/extra.sops.yaml",
]
# Paths the repository does not hold (or that are not `*.sops.yaml`): sops must refuse them, not encrypt them whole.
UNMATCHED = ["talos/main/cp-1.yaml", "secret.sops.yaml", "elsewhere/apps/x.sops.yaml", "apps/x.yaml", "apps/talos/x.sops.json"]


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """The starter's rendered GitOps repository on disk, with its own Secrets already in place."""
    from tierzero.render.gitops import render_gitops_tree
    from tierzero.workspace.plan import seal

    project = make_project(tmp_path_factory.mktemp("proj"), blueprint())
    result = render_gitops_tree(project.loaded.platform, project.cluster, project.secrets, project.secrets.recipient())
    sealed, _ = seal(result.secrets, project.secrets.recipient(), project.secrets.age_key(), None)
    files = {**result.files, **sealed}
    root = tmp_path_factory.mktemp("repo")
    for path, data in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)
    return root, project, files


def sops(root: Path, *args: str, key_file: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOPS_")}
    env["SOPS_DISABLE_VERSION_CHECK"] = "1"
    if key_file is not None:
        env["SOPS_AGE_KEY_FILE"] = str(key_file)
    return subprocess.run([find_sops(), *args], cwd=root, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("path", MATCHED)
@pytest.mark.parametrize("doc", [SECRET, CONFIG], ids=["Secret", "ConfigMap"])
def test_user_files_under_the_repository_keep_kubernetes_fields_readable(repo, path, doc):
    root, project, _ = repo
    target = root / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump(doc))
    result = sops(root, "--encrypt", "--in-place", path)
    assert result.returncode == 0, result.stderr
    encrypted = yaml.safe_load(target.read_text())
    assert {k: encrypted[k] for k in ("apiVersion", "kind", "metadata")} == {k: doc[k] for k in ("apiVersion", "kind", "metadata")}
    values = encrypted.get("stringData") or encrypted["data"]
    assert all(str(v).startswith("ENC[") for v in values.values())
    assert "hunter2" not in target.read_text()
    decrypted = sops(root, "--decrypt", path, key_file=project.ws.age_key)
    assert decrypted.returncode == 0 and yaml.safe_load(decrypted.stdout) == doc


@pytest.mark.parametrize("path", UNMATCHED)
def test_paths_the_repository_does_not_hold_match_no_rule(repo, path):
    root, _, _ = repo
    target = root / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump(SECRET))
    result = sops(root, "--encrypt", "--in-place", path)
    assert result.returncode != 0 and "no matching creation rules found" in result.stderr
    assert yaml.safe_load(target.read_text()) == SECRET


def test_every_rule_matches_what_the_repository_holds_and_its_secrets_agree(repo):
    """Each rule matches at least one file tierzero rendered, and each rendered Secret carries the rule's
    encrypted_regex and recipient, as sops itself would write it from the rule."""
    _, project, files = repo
    rules = yaml.safe_load(files[".sops.yaml"])["creation_rules"]
    secrets = [p for p in files if p.endswith(".sops.yaml") and p != ".sops.yaml"]
    assert secrets and rules
    for rule in rules:
        assert rule["path_regex"].startswith("^") and rule["age"] == project.secrets.recipient()
        assert any(re.search(rule["path_regex"], p) for p in secrets), rule
    for path in secrets:
        rule = next(r for r in rules if re.search(r["path_regex"], path))
        meta = yaml.safe_load(files[path])["sops"]
        assert meta["encrypted_regex"] == rule["encrypted_regex"] == "^(data|stringData)$"
        assert [a["recipient"] for a in meta["age"]] == [rule["age"]]
    top = {p.split("/")[0] for p in files if "/" in p}
    assert top <= {"apps", "clusters", "infrastructure"}
