"""Patches combine as talosctl combines them: strategic merge, RFC 6902, multi-document, $patch: delete."""

from __future__ import annotations

import json

import pytest

from tierzero.errors import InputError
from tierzero.render.talos.contract import SUPPORTED_CONTRACTS
from tierzero.render.talos.generate import generate
from tierzero.render.talos.patches import apply_patches, load_patch

LEGACY = ["v1.11", "v1.12", "v1.13"]


def test_maps_merge_scalars_override_lists_append():
    docs = [{"machine": {"certSANs": ["a"], "kubelet": {"image": "old", "extraArgs": {"x": "1"}}}}]
    patch = load_patch("machine:\n  certSANs: [b]\n  kubelet:\n    image: new\n    extraArgs: {y: '2'}\n")
    (result,) = apply_patches(docs, [patch])
    assert result["machine"]["certSANs"] == ["a", "b"]
    assert result["machine"]["kubelet"] == {"image": "new", "extraArgs": {"x": "1", "y": "2"}}
    assert docs[0]["machine"]["certSANs"] == ["a"], "input documents are not mutated"


def test_special_lists_are_replaced_not_appended():
    docs = [{"cluster": {"network": {"podSubnets": ["10.244.0.0/16"], "serviceSubnets": ["10.96.0.0/12"]}}}]
    patch = load_patch("cluster:\n  network:\n    podSubnets: [10.42.0.0/16]\n    serviceSubnets: [10.43.0.0/16]\n")
    (result,) = apply_patches(docs, [patch])
    assert result["cluster"]["network"] == {"podSubnets": ["10.42.0.0/16"], "serviceSubnets": ["10.43.0.0/16"]}


def test_interfaces_merge_by_name():
    docs = [{"machine": {"network": {"interfaces": [{"interface": "eth0", "dhcp": True}]}}}]
    patch = load_patch(
        "machine:\n  network:\n    interfaces:\n      - interface: eth0\n        mtu: 9000\n      - interface: eth1\n        dhcp: true\n"
    )
    (result,) = apply_patches(docs, [patch])
    assert result["machine"]["network"]["interfaces"] == [
        {"interface": "eth0", "dhcp": True, "mtu": 9000},
        {"interface": "eth1", "dhcp": True},
    ]


def test_patch_delete_removes_a_key():
    docs = [{"machine": {"install": {"disk": "/dev/sda", "wipe": False}}}]
    (result,) = apply_patches(docs, [load_patch("machine:\n  install:\n    wipe:\n      $patch: delete\n")])
    assert result["machine"]["install"] == {"disk": "/dev/sda"}


@pytest.mark.parametrize("contract", SUPPORTED_CONTRACTS)
def test_strategic_patch_on_generated_config(contract, base_options, by_kind):
    patch = "machine:\n  nodeLabels:\n    zone: a\n  certSANs: [extra.example]\n"
    configs = generate(base_options(contract, config_patches=[patch]))
    for docs in (configs.controlplane, configs.worker):
        assert docs[0]["machine"]["nodeLabels"]["zone"] == "a"
        assert docs[0]["machine"]["certSANs"] == ["extra.example"]
    if contract in LEGACY:  # merged into the generated labels, not replacing them
        assert configs.controlplane[0]["machine"]["nodeLabels"] == {
            "node.kubernetes.io/exclude-from-external-load-balancers": "",
            "zone": "a",
        }


@pytest.mark.parametrize("contract", SUPPORTED_CONTRACTS)
def test_multidoc_patch_targets_and_adds_documents(contract, base_options, by_kind):
    patch = (
        "apiVersion: v1alpha1\nkind: HostnameConfig\nhostname: node-1\nauto:\n  $patch: delete\n"
        "---\napiVersion: v1alpha1\nkind: RegistryMirrorConfig\nname: docker.io\nendpoints:\n  - url: https://m.local\n"
    )
    configs = generate(base_options(contract, config_patches_worker=[patch]))
    worker = configs.worker
    expected = {"apiVersion": "v1alpha1", "kind": "HostnameConfig", "hostname": "node-1"}
    assert by_kind(worker, "HostnameConfig") == [expected]
    unpatched = generate(base_options(contract)).worker
    if contract == "v1.11":  # no such document yet: the patch adds it, after the generated ones
        assert worker[-2] == expected
    else:  # merged into the generated document (auto: stable deleted), not added twice
        assert worker.index(expected) == unpatched.index(by_kind(unpatched, "HostnameConfig")[0])
    assert by_kind(worker, "RegistryMirrorConfig", "docker.io")[0]["endpoints"] == [{"url": "https://m.local"}]
    assert by_kind(configs.controlplane, "RegistryMirrorConfig") == []


@pytest.mark.parametrize("contract", ["v1.14", "v1.15"])
def test_patch_delete_removes_a_document(contract, base_options, by_kind):
    patch = "apiVersion: v1alpha1\nkind: KubeFlannelCNIConfig\n$patch: delete\n"
    configs = generate(base_options(contract, config_patches_control_plane=[patch]))
    assert by_kind(configs.controlplane, "KubeFlannelCNIConfig") == []
    assert by_kind(configs.controlplane, "KubeCoreDNSConfig") != []


@pytest.mark.parametrize("contract", ["v1.14", "v1.15"])
def test_named_document_delete_only_hits_that_name(contract, base_options, by_kind):
    patch = "apiVersion: v1alpha1\nkind: KubeAuthorizerConfig\nname: node\n$patch: delete\n"
    configs = generate(base_options(contract, config_patches_control_plane=[patch]))
    assert [d["name"] for d in by_kind(configs.controlplane, "KubeAuthorizerConfig")] == ["rbac"]


def test_rfc6902_patch_on_single_document_config(base_options):
    ops = [
        {"op": "add", "path": "/machine/network/hostname", "value": "cp-1"},
        {"op": "replace", "path": "/cluster/network/dnsDomain", "value": "x.local"},
        {"op": "remove", "path": "/machine/features/kubePrism"},
    ]
    configs = generate(base_options("v1.11", config_patches_control_plane=[json.dumps(ops)]))
    cp = configs.controlplane[0]
    assert cp["machine"]["network"]["hostname"] == "cp-1"
    assert cp["cluster"]["network"]["dnsDomain"] == "x.local"
    assert "kubePrism" not in cp["machine"]["features"]
    assert configs.worker[0]["cluster"]["network"]["dnsDomain"] == "cluster.local"


@pytest.mark.parametrize("contract", ["v1.12", "v1.13", "v1.14", "v1.15"])
def test_rfc6902_patch_on_multidoc_config_is_refused(contract, base_options):
    ops = '- op: add\n  path: /machine/network\n  value: {}\n'
    with pytest.raises(InputError, match="JSON6902 patches are not supported for multi-document"):
        generate(base_options(contract, config_patches=[ops]))


def test_patch_order_common_then_role_specific(base_options):
    common = "machine:\n  nodeLabels:\n    tier: common\n"
    role = "machine:\n  nodeLabels:\n    tier: worker\n"
    configs = generate(base_options("v1.11", config_patches=[common], config_patches_worker=[role]))
    assert configs.worker[0]["machine"]["nodeLabels"] == {"tier": "worker"}
    assert configs.controlplane[0]["machine"]["nodeLabels"]["tier"] == "common"


def test_patch_from_file_yaml_and_json(tmp_path, base_options):
    (tmp_path / "p.yaml").write_text("machine:\n  nodeLabels:\n    from: yaml\n")
    (tmp_path / "p.json").write_text(json.dumps({"machine": {"nodeAnnotations": {"from": "json"}}}))
    files = {"p.yaml": (tmp_path / "p.yaml").read_bytes(), "p.json": (tmp_path / "p.json").read_bytes()}  # render reads no files
    configs = generate(base_options("v1.13", config_patches=["@p.yaml", "@p.json"]), files)
    assert configs.worker[0]["machine"]["nodeLabels"] == {"from": "yaml"}
    assert configs.worker[0]["machine"]["nodeAnnotations"] == {"from": "json"}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("@/nonexistent/patch.yaml", "cannot read patch file"),
        ("machine: [unclosed", "invalid YAML"),
        ("", "empty"),
        ("- op: frobnicate\n  path: /x\n", "invalid RFC 6902"),
        ("- just\n- a list\n", "invalid RFC 6902"),
    ],
)
def test_bad_patches_are_input_errors(spec, message):
    with pytest.raises(InputError, match=message):
        load_patch(spec)
