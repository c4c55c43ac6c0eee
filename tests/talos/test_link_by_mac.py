"""Every rendered Talos config selects the node's link by its MAC, lower-cased as Talos compares it,
through the mechanism its contract's official schema accepts; the VM gets that same MAC; and no
talosconfig lists the VIP. Both starter blueprints, every supported contract."""

from __future__ import annotations

import pytest
import yaml

from memory_secrets import MemorySecrets
from spec_builder import spec_data
from tierzero.render import talos_spec
from tierzero.render.talos.contract import Contract
from tierzero.render.talos.node import LINK_ALIAS
from tierzero.render.talos.validate import validate_documents
from tierzero.spec import load_spec_bytes

CONTRACTS = ["v1.11.6", "v1.12.11", "v1.13.9", "v1.14.0", "v1.15.0"]


def platform(blueprint: str, talos: str, *, drop_macs: bool = False):
    data = spec_data(blueprint, {"clusters.0.talos_version": talos, "clusters.0.kubernetes_version": "1.34.1"})
    cluster = data["clusters"][0]
    if drop_macs:
        for node in cluster["control_planes"] + cluster.get("workers", []):
            node.pop("mac", None)
    return load_spec_bytes(yaml.safe_dump(data).encode()).platform


def network_docs(docs: list[dict]) -> tuple[list[dict], list[dict]]:
    v1 = docs[0]
    interfaces = ((v1.get("machine") or {}).get("network") or {}).get("interfaces") or []
    return interfaces, [d for d in docs[1:] if d.get("kind") in ("LinkAliasConfig", "LinkConfig", "DHCPv4Config", "Layer2VIPConfig")]


@pytest.mark.parametrize("blueprint", ["proxmox", "oci-free-tier"])
@pytest.mark.parametrize("talos", CONTRACTS)
def test_every_config_selects_its_link_by_the_lower_case_mac(oracles, blueprint, talos):
    p = platform(blueprint, talos)
    cluster = p.clusters[0]
    contract = Contract.parse(talos)
    schema = oracles / "talos" / "schemas" / f"{contract}.config.schema.json"
    store = MemorySecrets()
    checked = 0
    for role, node in cluster.nodes():
        mac = talos_spec.node_mac(cluster, node).lower()
        docs = [d for d in yaml.safe_load_all(talos_spec.machine_config(p, cluster, node.name, store)) if d]
        assert validate_documents(docs, contract, schema) == []
        interfaces, links = network_docs(docs)
        if contract.multidoc_network:
            assert interfaces == []  # the official v1.12+ schemas have no machine.network.interfaces
            alias = next(d for d in links if d["kind"] == "LinkAliasConfig")
            assert alias == {"apiVersion": "v1alpha1", "kind": "LinkAliasConfig", "name": LINK_ALIAS,
                             "selector": {"match": f'mac(link.permanent_addr) == "{mac}"'}}
            assert {d.get("name") for d in links if d["kind"] == "LinkConfig"} == {LINK_ALIAS}
            vips = [d for d in links if d["kind"] == "Layer2VIPConfig"]
            assert [v["link"] for v in vips] == ([LINK_ALIAS] if role == "controlplane" and cluster.vip else [])
        else:
            assert interfaces == [{**interfaces[0], "deviceSelector": {"hardwareAddr": mac, "physical": True}}]
            assert "interface" not in interfaces[0]
        checked += 1
    assert checked == len(cluster.nodes())


def test_a_node_without_a_mac_gets_a_stable_one_in_proxmoxs_prefix_on_both_sides():
    from tierzero.phases.platform_vm import desired_config, vm_inputs

    p = platform("proxmox", "v1.13.9", drop_macs=True)
    cluster = p.clusters[0]
    macs = {node.name: talos_spec.node_mac(cluster, node) for _, node in cluster.nodes()}
    assert all(m.startswith("BC:24:11:") for m in macs.values()) and len(set(macs.values())) == len(macs)
    assert macs == {node.name: talos_spec.node_mac(platform("proxmox", "v1.13.9", drop_macs=True).clusters[0], node)
                    for _, node in cluster.nodes()}  # the same on every run
    node = cluster.control_planes[0]
    ctx = type("Ctx", (), {"spec": p, "outputs": {}})()
    vm = vm_inputs(ctx, cluster, node, 1000, "local:import/x.qcow2", "0" * 64)  # type: ignore[arg-type]
    assert desired_config(vm, vm.image, "local:snippets/u.yaml")["net0"].startswith(f"virtio={macs[node.name]},")
    docs = [d for d in yaml.safe_load_all(talos_spec.machine_config(p, cluster, node.name, MemorySecrets())) if d]
    assert f'"{macs[node.name].lower()}"' in next(d for d in docs if d.get("kind") == "LinkAliasConfig")["selector"]["match"]


@pytest.mark.parametrize("blueprint", ["proxmox", "oci-free-tier"])
def test_no_talosconfig_lists_the_vip(blueprint):
    p = platform(blueprint, "v1.13.9")
    cluster = p.clusters[0]
    assert cluster.vip
    context = yaml.safe_load(talos_spec.talosconfig(cluster, MemorySecrets()))["contexts"][cluster.name]
    cps = [str(n.ip.address) for n in cluster.control_planes]
    assert context["endpoints"] == cps and cluster.vip not in context["endpoints"] + context["nodes"]


def test_a_talosconfig_stored_with_the_vip_is_rewritten_to_the_control_planes():
    """Workspaces from before kept the VIP as endpoint in the stored talosconfig; its certificate stays."""
    from tierzero.render.talos.client import talosconfig as make

    p = platform("oci-free-tier", "v1.13.9")
    cluster = p.clusters[0]
    store = MemorySecrets()
    old = make(talos_spec.secrets_bundle(store, cluster), cluster.name, [cluster.vip], [cluster.vip])
    store.put(talos_spec.secret_name(cluster, "talosconfig"), old)
    context = yaml.safe_load(talos_spec.talosconfig(cluster, store))["contexts"][cluster.name]
    assert context["endpoints"] == ["10.10.0.11", "10.10.0.12", "10.10.0.13"]
    assert context["crt"] == yaml.safe_load(old)["contexts"][cluster.name]["crt"]
