"""The spec's clusters rendered as Talos configs: per-node settings, patches, validity per contract."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from memory_secrets import MemorySecrets
from tierzero.render import talos_spec
from tierzero.render.talos.contract import Contract
from tierzero.render.talos.validate import validate_documents
from tierzero.spec import load_spec_bytes

BASE = yaml.safe_load((Path(__file__).parents[1] / "spec" / "valid" / "base.yaml").read_text())


def _labels_patch(talos: str, labels: dict) -> dict:
    if Contract.parse(talos).multidoc_kubernetes:
        return {"apiVersion": "v1alpha1", "kind": "KubeNodeConfig", "labels": labels}
    return {"machine": {"nodeLabels": labels}}


def platform(talos="v1.13.9", kubernetes="1.34.1", mutate=None):
    data = copy.deepcopy(BASE)
    c = data["clusters"][0]
    c["talos_version"], c["kubernetes_version"] = talos, kubernetes
    c["patches"] = {"cluster": [_labels_patch(talos, {"fleet": "tz"})], "worker": [_labels_patch(talos, {"tier": "worker"})]}
    # RFC 6902 patches work only on single-document configs (contract v1.11); later ones merge.
    zone = [{"op": "add", "path": "/machine/nodeLabels/zone", "value": "a"}] if talos.startswith("v1.11") else _labels_patch(talos, {"zone": "a"})
    c["workers"][0]["patches"] = [zone]
    if mutate:
        mutate(data)
    return load_spec_bytes(yaml.safe_dump(data).encode()).platform


def labels_of(docs: list[dict], talos: str) -> dict:
    if Contract.parse(talos).multidoc_kubernetes:
        return next(d for d in docs if d.get("kind") == "KubeNodeConfig").get("labels", {})
    return docs[0]["machine"].get("nodeLabels", {})


def docs_of(text: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(text) if d]


CONTRACTS = [("v1.11.6", "1.34.1"), ("v1.12.11", "1.34.1"), ("v1.13.9", "1.34.1"), ("v1.14.0", "1.34.1"), ("v1.15.0", "1.34.1")]


@pytest.mark.parametrize("talos,kubernetes", CONTRACTS)
def test_every_node_config_validates_against_its_contract_schema(oracles, talos, kubernetes):
    p = platform(talos, kubernetes)
    store = MemorySecrets()
    cluster = p.clusters[0]
    contract = Contract.parse(talos)
    schema = oracles / "talos" / "schemas" / f"{contract}.config.schema.json"
    for _, node in cluster.nodes():
        docs = docs_of(talos_spec.machine_config(p, cluster, node.name, store))
        findings = validate_documents(docs, contract, schema)
        assert not findings, [str(f) for f in findings]
    assert store.generated == ["talos/main/secrets.yaml"], "one bundle per cluster, made once"


def _flat(docs: list[dict]) -> str:
    return yaml.safe_dump_all(docs)


@pytest.mark.parametrize("talos,kubernetes", CONTRACTS)
def test_node_identity_network_and_cilium_settings(talos, kubernetes):
    p = platform(talos, kubernetes)
    store = MemorySecrets()
    cluster = p.clusters[0]
    cp = docs_of(talos_spec.machine_config(p, cluster, "cp-2", store))
    worker = docs_of(talos_spec.machine_config(p, cluster, "w-1", store))
    multidoc = Contract.parse(talos).multidoc_kubernetes
    for docs, name, ip in ((cp, "cp-2", "10.10.0.12/24"), (worker, "w-1", "10.10.0.21/24")):
        text = _flat(docs)
        assert name in text and ip in text
        assert "10.10.0.1" in text  # the gateway
    assert "10.10.0.10" in _flat(cp) and ("Layer2VIPConfig" in _flat(cp) or "vip:" in _flat(cp))
    assert "Layer2VIPConfig" not in _flat(worker) and "vip:" not in _flat(worker)
    if multidoc:
        kinds = {d.get("kind") for d in cp}
        assert "KubeFlannelCNIConfig" not in kinds
        assert next(d for d in cp if d.get("kind") == "KubeProxyConfig").get("enabled") is False
        inline = [d for d in cp if d.get("kind") == "KubeInlineManifestConfig"]
        assert [d["name"] for d in inline] == ["cilium-install"]
        assert not [d for d in worker if d.get("kind") == "KubeInlineManifestConfig"]
        assert next(d for d in cp if d.get("kind") == "KubePrismConfig")["port"] == 7445
    else:
        assert cp[0]["cluster"]["network"]["cni"] == {"name": "none"}
        assert cp[0]["cluster"]["proxy"]["disabled"] is True
        assert [m["name"] for m in cp[0]["cluster"]["inlineManifests"]] == ["cilium-install"]
        assert "inlineManifests" not in worker[0].get("cluster", {})
        manifest = cp[0]["cluster"]["inlineManifests"][0]["contents"]
        assert "kubeProxyReplacement=true" in manifest and "k8sServicePort=7445" in manifest


@pytest.mark.parametrize("talos,kubernetes", CONTRACTS)
def test_cluster_role_and_node_patches_apply_in_order(talos, kubernetes):
    p = platform(talos, kubernetes)
    store = MemorySecrets()
    cluster = p.clusters[0]
    cp = labels_of(docs_of(talos_spec.machine_config(p, cluster, "cp-1", store)), talos)
    worker = labels_of(docs_of(talos_spec.machine_config(p, cluster, "w-1", store)), talos)
    assert cp.get("fleet") == "tz" and "tier" not in cp and "zone" not in cp
    assert {k: worker[k] for k in ("fleet", "tier", "zone")} == {"fleet": "tz", "tier": "worker", "zone": "a"}


def test_installer_image_follows_arch_extensions_and_version():
    p = platform()
    urls = talos_spec.image_urls(p.clusters[0])
    assert urls["installer"] == f"factory.talos.dev/nocloud-installer/{urls['schematic']}:v1.13.9"
    # qcow2 as served: Proxmox's download-url `import` content takes .qcow2 names and unpacks nothing.
    assert urls["disk_image"] == f"https://factory.talos.dev/image/{urls['schematic']}/v1.13.9/nocloud-arm64.qcow2"
    cfg = docs_of(talos_spec.machine_config(p, p.clusters[0], "cp-1", MemorySecrets()))[0]
    assert cfg["machine"]["install"]["image"] == urls["installer"]
    assert cfg["machine"]["install"]["disk"] == "/dev/vda"

    def more_extensions(d):
        d["clusters"][0]["extensions"] = ["siderolabs/qemu-guest-agent", "siderolabs/iscsi-tools"]

    assert talos_spec.image_urls(platform(mutate=more_extensions).clusters[0])["schematic"] != urls["schematic"]


def test_rendering_is_deterministic_and_client_material_is_made_once():
    p = platform()
    store = MemorySecrets()
    cluster = p.clusters[0]
    first = talos_spec.machine_config(p, cluster, "cp-1", store)
    assert talos_spec.machine_config(p, cluster, "cp-1", store) == first
    tc = talos_spec.talosconfig(cluster, store)
    kc = talos_spec.kubeconfig(cluster, store)
    assert talos_spec.talosconfig(cluster, store) == tc and talos_spec.kubeconfig(cluster, store) == kc
    assert sorted(store.generated) == ["talos/main/kubeconfig", "talos/main/secrets.yaml", "talos/main/talosconfig"]
    ctx = yaml.safe_load(tc)["contexts"]["main"]
    # The control planes' own addresses, never the VIP (10.10.0.10): it exists only while etcd is healthy.
    assert ctx["endpoints"] == ["10.10.0.11", "10.10.0.12", "10.10.0.13"] and ctx["nodes"] == ctx["endpoints"]
    assert yaml.safe_load(kc)["clusters"][0]["cluster"]["server"] == "https://10.10.0.10:6443"


def test_no_cilium_manifest_when_cni_none():
    def no_cni(d):
        d["clusters"][0]["cni"] = "none"

    p = platform(mutate=no_cni)
    cp = docs_of(talos_spec.machine_config(p, p.clusters[0], "cp-1", MemorySecrets()))[0]
    assert "inlineManifests" not in cp["cluster"]
