"""Generated configs equal what talosctl writes for the same bundle, per contract and role."""

from __future__ import annotations

import pytest
import yaml

from tierzero.render.talos.contract import SUPPORTED_CONTRACTS as CONTRACTS
from tierzero.render.talos.generate import generate
from tierzero.render.talos.yamlio import load_stream

ROLES = ["controlplane", "worker"]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("contract", CONTRACTS)
def test_generated_equals_oracle_as_data(contract, role, base_options, talos_oracles):
    oracle_text = (talos_oracles / "stability" / contract / f"base-{role}.yaml").read_text()
    expected = [doc for doc in yaml.safe_load_all(oracle_text) if doc is not None]

    generated = load_stream(generate(base_options(contract)).to_yaml(role))

    assert [d.get("kind", "v1alpha1") for d in generated] == [d.get("kind", "v1alpha1") for d in expected]
    assert generated == expected


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("contract", CONTRACTS)
def test_generated_text_is_byte_identical(contract, role, base_options, talos_oracles):
    oracle_text = (talos_oracles / "stability" / contract / f"base-{role}.yaml").read_text()
    assert generate(base_options(contract)).to_yaml(role) == oracle_text


def test_generation_is_deterministic_for_a_bundle(base_options):
    first = generate(base_options("v1.14"))
    second = generate(base_options("v1.14"))
    assert first.to_yaml("controlplane") == second.to_yaml("controlplane")
    assert first.to_yaml("worker") == second.to_yaml("worker")
