"""Per-node rendering: network, VIP, install target and Cilium-ready settings, per contract."""

from __future__ import annotations

import pytest

from tierzero.errors import InputError
from tierzero.render.talos.contract import SUPPORTED_CONTRACTS, Contract
from tierzero.render.talos.node import ClusterInputs, NodeInputs, node_documents, render_node_config
from tierzero.render.talos.validate import validate_documents
from tierzero.render.talos.yamlio import load_stream

INSTALLER = "factory.talos.dev/installer/ce4c980550dd2ab1b17bbf2b08801c7eb59418eafe8f279833297925d67c7515:v1.14.0"
STATIC_CP = NodeInputs("cp-1", "controlplane", address="10.0.0.11/24", gateway="10.0.0.1", vip="10.0.0.5")
DHCP_WORKER = NodeInputs("worker-1", "worker", install_disk="/dev/vda", interface="ens18")


def cluster(bundle, contract: str, **extra) -> ClusterInputs:
    return ClusterInputs(
        "home", "https://10.0.0.5:6443", contract, "1.33.0", bundle,
        installer_image=INSTALLER, nameservers=("1.1.1.1",), **extra,
    )


@pytest.mark.parametrize("contract", SUPPORTED_CONTRACTS)
@pytest.mark.parametrize("node", [STATIC_CP, DHCP_WORKER], ids=["static-cp", "dhcp-worker"])
def test_rendered_nodes_validate(contract, node, bundle, schema_for):
    docs = load_stream(render_node_config(cluster(bundle, contract), node))
    assert [str(f) for f in validate_documents(docs, Contract.parse(contract), schema_for(contract))] == []


@pytest.mark.parametrize("contract", ["v1.11"])
def test_legacy_network_and_cilium(contract, bundle):
    cp = node_documents(cluster(bundle, contract), STATIC_CP)[0]
    network = cp["machine"]["network"]
    assert network["hostname"] == "cp-1"
    assert network["nameservers"] == ["1.1.1.1"]
    assert network["interfaces"] == [{
        "interface": "eth0",
        "addresses": ["10.0.0.11/24"],
        "routes": [{"network": "0.0.0.0/0", "gateway": "10.0.0.1"}],
        "vip": {"ip": "10.0.0.5"},
    }]
    assert cp["cluster"]["network"]["cni"] == {"name": "none"}
    assert cp["cluster"]["proxy"]["disabled"] is True
    assert cp["machine"]["features"]["kubePrism"] == {"enabled": True, "port": 7445}
    assert cp["machine"]["install"]["image"] == INSTALLER
    worker = node_documents(cluster(bundle, contract), DHCP_WORKER)[0]
    assert worker["machine"]["network"]["interfaces"] == [{"interface": "ens18", "dhcp": True}]
    assert worker["machine"]["install"]["disk"] == "/dev/vda"


@pytest.mark.parametrize("contract", ["v1.12", "v1.13", "v1.14", "v1.15"])
def test_multidoc_network(contract, bundle, by_kind):
    docs = node_documents(cluster(bundle, contract), STATIC_CP)
    assert by_kind(docs, "HostnameConfig") == [{"apiVersion": "v1alpha1", "kind": "HostnameConfig", "hostname": "cp-1"}]
    (link,) = by_kind(docs, "LinkConfig", "eth0")
    assert link["addresses"] == [{"address": "10.0.0.11/24"}]
    assert link["routes"] == [{"gateway": "10.0.0.1"}]
    assert by_kind(docs, "Layer2VIPConfig", "10.0.0.5")[0]["link"] == "eth0"
    (resolver,) = by_kind(docs, "ResolverConfig")
    assert resolver["nameservers"] == [{"address": "1.1.1.1"}]
    assert "network" not in docs[0]["machine"] or "hostname" not in docs[0]["machine"]["network"]
    worker = node_documents(cluster(bundle, contract), DHCP_WORKER)
    assert by_kind(worker, "DHCPv4Config", "ens18") != []
    assert by_kind(worker, "Layer2VIPConfig") == []


@pytest.mark.parametrize("contract", ["v1.14", "v1.15"])
def test_multidoc_cilium_ready(contract, bundle, by_kind):
    docs = node_documents(cluster(bundle, contract), STATIC_CP)
    assert by_kind(docs, "KubeFlannelCNIConfig") == []
    assert by_kind(docs, "KubeProxyConfig")[0]["enabled"] is False
    assert by_kind(docs, "KubePrismConfig")[0]["port"] == 7445
    (unattended,) = by_kind(docs, "UnattendedInstallConfig")
    assert unattended["installer"]["image"] == INSTALLER
    worker = node_documents(cluster(bundle, contract), DHCP_WORKER)
    assert by_kind(worker, "KubeProxyConfig") == []


@pytest.mark.parametrize("contract", SUPPORTED_CONTRACTS)
def test_cilium_can_be_turned_off(contract, bundle):
    text = render_node_config(cluster(bundle, contract, cilium_ready=False), STATIC_CP)
    assert ("KubeFlannelCNIConfig" in text) == Contract.parse(contract).multidoc_kubernetes
    assert "name: none" not in text


def test_patches_apply_after_generated_settings(bundle):
    common = cluster(bundle, "v1.11", patches=("machine:\n  nodeLabels:\n    site: home\n",))
    node = NodeInputs("cp-1", "controlplane", patches=("machine:\n  network:\n    hostname: renamed\n",))
    cp = node_documents(common, node)[0]
    assert cp["machine"]["nodeLabels"]["site"] == "home"
    assert cp["machine"]["network"]["hostname"] == "renamed"


def test_deterministic_for_the_same_bundle(bundle):
    first = render_node_config(cluster(bundle, "v1.14"), STATIC_CP)
    assert first == render_node_config(cluster(bundle, "v1.14"), STATIC_CP)


@pytest.mark.parametrize(
    ("node", "message"),
    [
        (NodeInputs("w", "worker", vip="10.0.0.5"), "only control-plane nodes"),
        (NodeInputs("w", "worker", address="10.0.0.300/24"), "invalid address"),
        (NodeInputs("w", "worker", address="10.0.0.3/32"), "prefix length"),
        (NodeInputs("w", "worker", address="10.0.0.3/24", gateway="gw"), "invalid gateway"),
        (NodeInputs("w", "bastion"), "role must be"),
    ],
)
def test_bad_node_inputs(node, message, bundle):
    with pytest.raises(InputError, match=message):
        render_node_config(cluster(bundle, "v1.14"), node)
