"""Fixtures: a workspace with a real age key beside a spec built from the starter blueprint."""

from __future__ import annotations

import copy
import os
import secrets as pysecrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from spec_builder import blueprint_data

from tierzero.adapters.sops import AgeKey, decrypt
from tierzero.spec import LoadedSpec, load_spec
from tierzero.workspace import Workspace
from tierzero.workspace.keys import init_workspace
from tierzero.workspace.secrets import WorkspaceSecrets

CRDS = Path(__file__).resolve().parents[3] / "shared" / "oracles" / "crds"  # tests/conftest.py's ORACLES / "crds"


@pytest.fixture(autouse=True)
def _need_oracles(oracles: Path) -> None:
    """Fail (not skip) without the shared CRD schemas, like every oracle-backed test."""
    assert (oracles / "crds") == CRDS


def blueprint(name: str = "oci-free-tier") -> dict[str, Any]:
    return blueprint_data(name)


@dataclass
class Project:
    root: Path
    loaded: LoadedSpec
    ws: Workspace
    secrets: WorkspaceSecrets

    @property
    def cluster(self):
        return self.loaded.platform.clusters[0]

    def decrypt(self, data: bytes) -> dict:
        return yaml.safe_load(decrypt(data, AgeKey(key_file=self.ws.age_key)))


def make_project(root: Path, spec: dict[str, Any], environ: dict[str, str] | None = None) -> Project:
    root.mkdir(parents=True, exist_ok=True)
    (root / "tierzero.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    ws = Workspace.beside(root / "tierzero.yaml")
    init_workspace(ws)
    loaded = load_spec(root / "tierzero.yaml")
    return Project(root, loaded, ws, WorkspaceSecrets(ws, loaded.base_dir, environ=environ))


@pytest.fixture
def project_factory(tmp_path: Path) -> Callable[..., Project]:
    counter = iter(range(1000))

    def make(spec: dict[str, Any] | None = None, environ: dict[str, str] | None = None) -> Project:
        return make_project(tmp_path / f"p{next(counter)}", spec or blueprint(), environ)

    return make


def canary(label: str) -> str:
    return f"canary-{label}-{pysecrets.token_hex(12)}"


def full_spec(engine: str = "flux", lb: str = "metallb", dns: str = "rfc2136", cert: str = "http01") -> tuple[dict[str, Any], dict[str, str]]:
    """The starter spec with every add-on on, each secret referenced through env: with a canary."""
    spec = copy.deepcopy(blueprint())
    env = {name: canary(name.lower()) for name in ("TS_ID", "TS_SECRET", "GC_TOKEN", "TSIG", "CF_TOKEN")}
    addons = spec["clusters"][0]["addons"]
    if cert == "dns01":
        addons["cert_manager"].update(cloudflare_api_token="env:CF_TOKEN", dns_zones=["example.org"])
    addons["tailscale_operator"] = {"oauth_client_id": "env:TS_ID", "oauth_client_secret": "env:TS_SECRET"}
    addons["grafana_alloy"] = {
        "prometheus_url": "https://prometheus-prod.grafana.net/api/prom/push",
        "loki_url": "https://logs-prod.grafana.net/loki/api/v1/push",
        "username": "123456",
        "token": "env:GC_TOKEN",
    }
    addons["metallb"] = {"implementation": lb, "addresses": ["10.10.0.200-10.10.0.220", "10.10.0.224/28"]}
    if dns == "rfc2136":
        addons["external_dns"] = {
            "provider": "rfc2136",
            "domain_filters": ["home.example.org"],
            "rfc2136": {"host": "10.10.0.2", "zone": "home.example.org", "tsig_keyname": "externaldns", "tsig_secret": "env:TSIG"},
        }
    else:
        addons["external_dns"] = {"provider": "cloudflare", "domain_filters": ["example.org"], "cloudflare_api_token": "env:CF_TOKEN"}
    addons["infisical"] = {"service": "infisical"}
    spec["clusters"][0]["gitops"]["engine"] = engine
    return spec, env


@pytest.fixture
def environ(monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, str]], None]:
    def set_all(values: dict[str, str]) -> None:
        for k, v in values.items():
            monkeypatch.setenv(k, v)

    return set_all


def read_tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)).replace(os.sep, "/"): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
