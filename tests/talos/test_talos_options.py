"""Each gen-config option lands where talosctl puts it for the contract (v1alpha1 field or typed document)."""

from __future__ import annotations

import pytest

from tierzero.errors import InputError
from tierzero.render.talos.contract import SUPPORTED_CONTRACTS
from tierzero.render.talos.generate import generate

LEGACY = ["v1.11", "v1.12", "v1.13"]
MULTIDOC = ["v1.14", "v1.15"]


def legacy_doc(docs):
    return docs[0]


@pytest.mark.parametrize("contract", SUPPORTED_CONTRACTS)
def test_additional_sans(contract, base_options, by_kind):
    configs = generate(base_options(contract, additional_sans=["api.example.com", "10.0.0.5"]))
    for docs in (configs.controlplane, configs.worker):
        assert legacy_doc(docs)["machine"]["certSANs"] == ["api.example.com", "10.0.0.5"]
    cp = configs.controlplane
    if contract == "v1.11":
        assert cp[0]["cluster"]["apiServer"]["certSANs"] == ["base", "api.example.com", "10.0.0.5"]
    elif contract in LEGACY:
        assert cp[0]["cluster"]["apiServer"]["certSANs"] == ["api.example.com", "10.0.0.5"]
    else:
        assert by_kind(cp, "KubeAPIServerConfig")[0]["certExtraSANs"] == ["api.example.com", "10.0.0.5"]
        assert "apiServer" not in cp[0]["cluster"]


@pytest.mark.parametrize("contract", SUPPORTED_CONTRACTS)
def test_dns_domain_and_subnets(contract, base_options, by_kind):
    configs = generate(
        base_options(contract, dns_domain="corp.local", pod_subnets=["10.42.0.0/16"], service_subnets=["10.43.0.0/16"])
    )
    for docs in (configs.controlplane, configs.worker):
        if contract in LEGACY:
            network = docs[0]["cluster"]["network"]
        else:
            (network,) = by_kind(docs, "KubeNetworkConfig")
            assert "network" not in docs[0]["cluster"]
        assert network["dnsDomain"] == "corp.local"
        assert network["podSubnets"] == ["10.42.0.0/16"]
        assert network["serviceSubnets"] == ["10.43.0.0/16"]


@pytest.mark.parametrize("contract", SUPPORTED_CONTRACTS)
def test_install_disk_and_image(contract, base_options, by_kind):
    configs = generate(base_options(contract, install_disk="/dev/vda", install_image="factory.talos.dev/installer/x:v1"))
    for docs in (configs.controlplane, configs.worker):
        if contract in LEGACY:
            install = docs[0]["machine"]["install"]
            assert (install["disk"], install["image"], install["wipe"]) == ("/dev/vda", "factory.talos.dev/installer/x:v1", False)
            assert install.get("grubUseUKICmdline") is (True if contract != "v1.11" else None)
        else:
            assert "install" not in docs[0]["machine"]
            (unattended,) = by_kind(docs, "UnattendedInstallConfig")
            assert unattended["installer"] == {"image": "factory.talos.dev/installer/x:v1"}
            assert unattended["provisioning"] == {"diskSelector": {"match": 'disk.dev_path == "/dev/vda"'}, "wipe": False}


@pytest.mark.parametrize("contract", MULTIDOC)
def test_no_unattended_install_without_disk(contract, base_options, by_kind):
    configs = generate(base_options(contract, install_image="ghcr.io/siderolabs/installer:v1.14.0"))
    assert by_kind(configs.controlplane, "UnattendedInstallConfig") == []
    assert any("install disk" in w for w in configs.warnings)


@pytest.mark.parametrize("contract", SUPPORTED_CONTRACTS)
def test_kernel_args(contract, base_options):
    configs = generate(base_options(contract, install_extra_kernel_args=["console=ttyS0", "net.ifnames=0"]))
    if contract in LEGACY:
        assert configs.worker[0]["machine"]["install"]["extraKernelArgs"] == ["console=ttyS0", "net.ifnames=0"]
        assert configs.warnings == []
    else:
        assert "extraKernelArgs" not in str(configs.worker)
        assert any("kernel arguments" in w for w in configs.warnings)


@pytest.mark.parametrize("contract", SUPPORTED_CONTRACTS)
def test_registry_mirrors(contract, base_options, by_kind):
    mirrors = {"ghcr.io": ["https://ghcr.mirror.local"], "docker.io": ["https://a.local", "http://b.local:5000"]}
    configs = generate(base_options(contract, registry_mirrors=mirrors))
    for docs in (configs.controlplane, configs.worker):
        if contract == "v1.11":
            assert docs[0]["machine"]["registries"]["mirrors"] == {
                "ghcr.io": {"endpoints": ["https://ghcr.mirror.local"]},
                "docker.io": {"endpoints": ["https://a.local", "http://b.local:5000"]},
            }
        else:
            assert "registries" not in docs[0]["machine"]
            found = by_kind(docs, "RegistryMirrorConfig")
            assert [d["name"] for d in found] == ["docker.io", "ghcr.io"]  # sorted like talosctl
            assert found[0]["endpoints"] == [{"url": "https://a.local"}, {"url": "http://b.local:5000"}]
            hostname_at = docs.index(by_kind(docs, "HostnameConfig")[0])
            assert docs.index(found[-1]) == hostname_at - 1


@pytest.mark.parametrize("contract", SUPPORTED_CONTRACTS)
def test_local_api_server_port(contract, base_options, by_kind):
    configs = generate(base_options(contract, local_api_server_port=7443))
    if contract in LEGACY:
        assert configs.controlplane[0]["cluster"]["controlPlane"]["localAPIServerPort"] == 7443
        assert "localAPIServerPort" not in configs.worker[0]["cluster"]["controlPlane"]
    else:
        assert by_kind(configs.controlplane, "KubeAPIServerConfig")[0]["apiPort"] == 7443
        assert by_kind(configs.worker, "KubeAPIServerConfig") == []


@pytest.mark.parametrize("contract", SUPPORTED_CONTRACTS)
def test_allow_scheduling_on_control_planes(contract, base_options, by_kind):
    default = generate(base_options(contract))
    allowed = generate(base_options(contract, allow_scheduling_on_control_planes=True))
    if contract in LEGACY:
        assert "allowSchedulingOnControlPlanes" not in default.controlplane[0]["cluster"]
        assert allowed.controlplane[0]["cluster"]["allowSchedulingOnControlPlanes"] is True
        assert "allowSchedulingOnControlPlanes" not in allowed.worker[0]["cluster"]
    else:
        taint = {"node-role.kubernetes.io/control-plane": "NoSchedule"}
        assert by_kind(default.controlplane, "KubeNodeConfig")[0]["taints"] == taint
        node = by_kind(allowed.controlplane, "KubeNodeConfig")[0]
        assert "taints" not in node
        assert "node-role.kubernetes.io/control-plane" in node["labels"]


@pytest.mark.parametrize("contract", SUPPORTED_CONTRACTS)
def test_sysctls(contract, base_options, by_kind):
    sysctls = {"net.core.somaxconn": "65535", "vm.max_map_count": "262144"}
    configs = generate(base_options(contract, sysctls=sysctls))
    for docs in (configs.controlplane, configs.worker):
        if contract in LEGACY:
            assert docs[0]["machine"]["sysctls"] == sysctls
        else:
            assert "sysctls" not in docs[0]["machine"]
            assert by_kind(docs, "SysctlConfig")[0]["params"] == sysctls


@pytest.mark.parametrize("contract", SUPPORTED_CONTRACTS)
def test_custom_cni_urls(contract, base_options, by_kind):
    urls = ["https://example.com/cilium.yaml", "https://example.com/extra.yaml"]
    configs = generate(base_options(contract, cni_urls=urls))
    if contract in LEGACY:
        for docs in (configs.controlplane, configs.worker):
            assert docs[0]["cluster"]["network"]["cni"] == {"name": "custom", "urls": urls}
    else:
        assert by_kind(configs.controlplane, "KubeFlannelCNIConfig") == []
        assert [d["url"] for d in by_kind(configs.controlplane, "KubeExternalManifestConfig")] == urls
        assert by_kind(generate(base_options(contract)).controlplane, "KubeFlannelCNIConfig") != []


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"endpoint": "http://base:6443"}, "not an https URL"),
        ({"endpoint": "base:6443"}, "not an https URL"),
        ({"pod_subnets": ["10.244.0.0/33"]}, "invalid pod subnet"),
        ({"service_subnets": ["10.96.0.1/12"]}, "invalid service subnet"),
        ({"cluster_name": " "}, "cluster name"),
        ({"talos_contract": "v1.9"}, "not supported"),
        ({"local_api_server_port": 70000}, "out of range"),
    ],
)
def test_bad_options_are_input_errors(override, message, base_options):
    opts = base_options("v1.14")
    for key, value in override.items():
        setattr(opts, key, value)
    with pytest.raises(InputError, match=message):
        generate(opts)
