"""Every generated document passes its contract's official schema (minus one named list) and semantic checks."""

from __future__ import annotations

import copy

import pytest

from tierzero.render.talos.contract import SUPPORTED_CONTRACTS, Contract
from tierzero.render.talos.generate import generate
from tierzero.render.talos.validate import (
    TALOSCTL_SCHEMA_EXCEPTIONS,
    schema_findings,
    semantic_findings,
    validate_documents,
)

ALL_OPTIONS = dict(
    additional_sans=["api.example.com"],
    dns_domain="corp.local",
    install_disk="/dev/vda",
    install_image="factory.talos.dev/installer/abc:v1.14.0",
    registry_mirrors={"docker.io": ["https://mirror.local"]},
    local_api_server_port=7443,
    allow_scheduling_on_control_planes=True,
    sysctls={"vm.max_map_count": "262144"},
    cni_urls=["https://example.com/cni.yaml"],
)


@pytest.mark.parametrize("contract", SUPPORTED_CONTRACTS)
@pytest.mark.parametrize("options", [{}, ALL_OPTIONS], ids=["defaults", "all-options"])
def test_generated_documents_pass_schema_and_semantics(contract, options, base_options, schema_for):
    configs = generate(base_options(contract, **options))
    for docs in (configs.controlplane, configs.worker):
        assert [str(f) for f in validate_documents(docs, Contract.parse(contract), schema_for(contract))] == []


def test_exception_list_is_short_and_named():
    assert {(e.kind, e.field) for e in TALOSCTL_SCHEMA_EXCEPTIONS} == {("", "persist"), ("UnattendedInstallConfig", "kind")}
    assert all(e.reason for e in TALOSCTL_SCHEMA_EXCEPTIONS)


@pytest.mark.parametrize("contract", SUPPORTED_CONTRACTS)
def test_schema_catches_unknown_fields_and_bad_types(contract, base_options, schema_for):
    docs = copy.deepcopy(generate(base_options(contract)).worker)
    docs[0]["machine"]["bogus"] = 1
    docs[0]["debug"] = "yes"
    messages = [str(f) for f in schema_findings(docs, schema_for(contract))]
    assert any("bogus" in m for m in messages)
    assert any("debug" in m and "boolean" in m for m in messages)


def test_schema_rejects_kinds_from_a_newer_contract(base_options, schema_for):
    docs = generate(base_options("v1.14")).worker
    messages = [str(f) for f in schema_findings(docs, schema_for("v1.11"))]
    assert any("unknown document kind 'KubeletConfig'" in m for m in messages)


@pytest.mark.parametrize("contract", SUPPORTED_CONTRACTS)
def test_controlplane_without_cluster_ca_key(contract, base_options):
    docs = copy.deepcopy(generate(base_options(contract)).controlplane)
    if Contract.parse(contract).multidoc_kubernetes:
        next(d for d in docs if d.get("kind") == "KubeAPIServerCAConfig")["issuingCA"]["key"] = ""
        expected = ".issuingCA.key"
    else:
        docs[0]["cluster"]["ca"]["key"] = ""
        expected = ".cluster.ca.key"
    messages = [str(f) for f in semantic_findings(docs, Contract.parse(contract))]
    assert any(expected in m and "cluster CA key" in m for m in messages), messages


@pytest.mark.parametrize("contract", SUPPORTED_CONTRACTS)
def test_endpoint_must_be_https(contract, base_options):
    docs = copy.deepcopy(generate(base_options(contract)).worker)
    cluster_doc = next((d for d in docs if d.get("kind") == "KubeClusterConfig"), None)
    if cluster_doc is not None:
        cluster_doc["endpoint"] = "http://base:6443"
    else:
        docs[0]["cluster"]["controlPlane"]["endpoint"] = "http://base:6443"
    messages = [str(f) for f in semantic_findings(docs, Contract.parse(contract))]
    assert any("not an https URL" in m for m in messages)


@pytest.mark.parametrize("contract", SUPPORTED_CONTRACTS)
def test_invalid_cidr_is_reported_with_its_path(contract, base_options):
    docs = copy.deepcopy(generate(base_options(contract)).worker)
    network = next((d for d in docs if d.get("kind") == "KubeNetworkConfig"), None) or docs[0]["cluster"]["network"]
    network["podSubnets"] = ["10.244.0.0/16", "10.300.0.0/16"]
    messages = [str(f) for f in semantic_findings(docs, Contract.parse(contract))]
    assert any("podSubnets.1" in m and "invalid CIDR" in m for m in messages), messages


def test_v1alpha1_field_next_to_its_replacement_document(base_options):
    docs = copy.deepcopy(generate(base_options("v1.14")).worker)
    docs[0]["machine"]["kubelet"] = {"image": "ghcr.io/siderolabs/kubelet:v1.28.0"}
    messages = [str(f) for f in semantic_findings(docs, Contract.parse("v1.14"))]
    assert any(".machine.kubelet" in m and "KubeletConfig" in m for m in messages)


def test_duplicate_documents_and_missing_v1alpha1(base_options):
    docs = generate(base_options("v1.14")).worker
    messages = [str(f) for f in semantic_findings([*docs, docs[-1]], Contract.parse("v1.14"))]
    assert any("duplicate document KubePrismConfig" in m for m in messages)
    messages = [str(f) for f in semantic_findings(docs[1:], Contract.parse("v1.14"))]
    assert any("exactly one v1alpha1 document" in m for m in messages)
