from __future__ import annotations

from pathlib import Path

import pytest

from tierzero.render.talos.contract import Contract
from tierzero.render.talos.options import GenerateOptions
from tierzero.render.talos.secrets import SecretsBundle, load_bundle


@pytest.fixture(scope="session")
def talos_oracles(oracles: Path) -> Path:
    return oracles / "talos"


@pytest.fixture(scope="session")
def bundle(talos_oracles: Path) -> SecretsBundle:
    return load_bundle(talos_oracles / "stability" / "secrets.yaml")


@pytest.fixture(scope="session")
def schema_for(talos_oracles: Path):
    def pick(contract: str) -> Path:
        return talos_oracles / "schemas" / f"{Contract.parse(contract)}.config.schema.json"

    return pick


@pytest.fixture
def base_options(bundle: SecretsBundle):
    """Options reproducing the oracle: cluster `base`, https://base:6443, Kubernetes 1.28.0."""

    def make(contract: str, **overrides) -> GenerateOptions:
        return GenerateOptions("base", "https://base:6443", "1.28.0", contract, secrets=bundle, **overrides)

    return make


@pytest.fixture(scope="session")
def by_kind():
    """Documents of one kind (and name) from a config stream."""

    def select(docs: list[dict], kind: str, name: str | None = None) -> list[dict]:
        return [d for d in docs if d.get("kind") == kind and (name is None or d.get("name") == name)]

    return select
