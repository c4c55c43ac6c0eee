"""Nothing tierzero renders makes Flux or tierzero fetch its own machinery from the internet: the
rendered trees of both blueprints name no URL but the ones the cluster reads at run time by
design (chart repositories, Git sources of add-ons, the cluster's own repository, ACME). The
guard the sandbox deploy tests run under (`offline_guard`) is shown to catch an attempt."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from offline_guard import offline_env
from tierzero.render.gitops.versions import CHARTS, GIT_SOURCES

URL = re.compile(r"\b(?:https?|oci)://[^\s\"'<>]+")
# What the cluster itself reads when it runs (never tierzero, never at deploy): each chart's
# repository, each add-on's Git source, Let's Encrypt's ACME directories.
ALLOWED = {c.repo.rstrip("/") for c in CHARTS.values()} | {g.url for g in GIT_SOURCES.values()} | {
    "https://acme-v02.api.letsencrypt.org/directory", "https://acme-staging-v02.api.letsencrypt.org/directory"}


@pytest.mark.parametrize("blueprint", ["oci-free-tier", "proxmox"])
def test_the_rendered_tree_names_no_url_outside_the_allow_list(tmp_path: Path, blueprint: str) -> None:
    env, attempts = offline_env(tmp_path / "guard")
    demo = tmp_path / "demo"
    for args in (["init", str(demo), "--blueprint", blueprint], ["plan", "-f", str(demo / "tierzero.yaml")]):
        proc = subprocess.run([sys.executable, "-m", "tierzero", *args], capture_output=True, text=True, env=env, timeout=240)
        assert proc.returncode == 0, proc.stderr
    spec = yaml.safe_load((demo / "tierzero.yaml").read_text())
    own = {c["gitops"]["repo_url"] for c in spec["clusters"]}
    found: dict[str, set[str]] = {}
    tree = demo / ".tierzero" / "render" / "gitops"
    for path in tree.rglob("*"):
        if path.is_file() and not path.name.endswith(".sops.yaml"):
            for url in URL.findall(path.read_text()):
                found.setdefault(url.rstrip("/"), set()).add(str(path.relative_to(tree)))
    assert found, "the scan found no URL at all: it would not catch one either"
    unexpected = {url: sorted(paths) for url, paths in found.items() if url not in ALLOWED and url not in own}
    assert unexpected == {}
    for kust in tree.rglob("kustomization.yaml"):
        assert not URL.findall(kust.read_text()), f"{kust}: a remote resource is fetched at every reconcile"
    assert attempts.read_text() == ""


def test_the_guard_catches_an_attempt(tmp_path: Path) -> None:
    env, attempts = offline_env(tmp_path)
    code = "import requests\ntry:\n    requests.get('https://github.com', timeout=5)\nexcept Exception as exc:\n    print(type(exc).__name__)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert proc.stdout.strip() in ("ProxyError", "ConnectionError")  # the proxy at the closed port refuses
    env.pop("HTTPS_PROXY"), env.pop("https_proxy"), env.pop("ALL_PROXY"), env.pop("all_proxy")
    subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert "lookup github.com" in attempts.read_text()  # without the proxy, the socket guard sees it
