"""Issue 17, cases 1 and 2: talosctl's install defaults, its current stability output, and Talos'
install-mode rules in `talos validate`."""

from __future__ import annotations

import copy
import json

import pytest
import typer
import yaml

from tierzero.cli import output, talos_cmd
from tierzero.render.talos.contract import SUPPORTED_CONTRACTS, Contract
from tierzero.render.talos.generate import generate
from tierzero.render.talos.modes import mode_findings
from tierzero.render.talos.yamlio import load_stream

APP = typer.Typer()


@APP.callback()
def _root() -> None:
    """Only the talos commands, in-process."""


talos_cmd.register(APP)


def run(argv: list[str]) -> int:
    return output.invoke(APP, argv)


EMPTY_SCHEMATIC = "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba"
# talosctl's default installer per contract, for the newest release of each line.
DEFAULT_IMAGES = {
    "v1.11": "ghcr.io/siderolabs/installer:v1.11.6",
    "v1.12": "ghcr.io/siderolabs/installer:v1.12.11",
    "v1.13": "ghcr.io/siderolabs/installer:v1.13.9",
    "v1.14": f"factory.talos.dev/metal-installer/{EMPTY_SCHEMATIC}:v1.14.0",
    "v1.15": f"factory.talos.dev/metal-installer/{EMPTY_SCHEMATIC}:v1.15.0",
}


def genconfig(tmp_path, talos_oracles, contract: str, *extra: str) -> tuple[list[dict], list[dict]]:
    out = tmp_path / contract
    secrets = talos_oracles / "stability" / "secrets.yaml"
    argv = ["talos", "genconfig", "demo", "https://192.0.2.10:6443", "--talos-version", contract,
            "--with-secrets", str(secrets), "-o", str(out), "--force", *extra]
    assert run(argv) == 0
    return (load_stream((out / "controlplane.yaml").read_text()), load_stream((out / "worker.yaml").read_text()))


def install_of(docs: list[dict], contract: str) -> tuple[str | None, str | None]:
    """(install disk, installer image) wherever the contract keeps them."""
    if Contract.parse(contract).multidoc_kubernetes:
        assert "install" not in docs[0]["machine"]
        (unattended,) = [d for d in docs if d.get("kind") == "UnattendedInstallConfig"]
        match = unattended["provisioning"]["diskSelector"]["match"]
        assert match.startswith("disk.dev_path == ")
        return json.loads(match.removeprefix("disk.dev_path == ")), unattended["installer"].get("image")
    install = docs[0]["machine"]["install"]
    return install.get("disk"), install.get("image")


@pytest.mark.parametrize("contract", SUPPORTED_CONTRACTS)
def test_genconfig_without_install_flags_gets_talosctls_defaults(contract, tmp_path, talos_oracles):
    """talosctl defaults --install-disk to /dev/sda and --install-image to the installer of its release:
    `ghcr.io/siderolabs/installer:<tag>` up to v1.13, `factory.talos.dev/metal-installer/<empty schematic>:<tag>`
    from v1.14, written as an UnattendedInstallConfig with a disk selector. Source: siderolabs/talos
    cmd/talosctl/cmd/mgmt/gen/config.go (flags install-disk, install-image) and pkg/images/images.go at
    v1.11.6, v1.12.11, v1.13.9, v1.14.0-rc.1 and main; pkg/machinery/config/generate/init.go (unattendedInstallConfig)."""
    for docs in genconfig(tmp_path, talos_oracles, contract):
        assert install_of(docs, contract) == ("/dev/sda", DEFAULT_IMAGES[contract])


@pytest.mark.parametrize("contract", SUPPORTED_CONTRACTS)
def test_install_disk_alone_still_gets_the_default_image(contract, tmp_path, talos_oracles):
    """`--install-disk` and `--install-image` are independent flags with their own defaults (gen/config.go)."""
    for docs in genconfig(tmp_path, talos_oracles, contract, "--install-disk", "/dev/vda"):
        assert install_of(docs, contract) == ("/dev/vda", DEFAULT_IMAGES[contract])


@pytest.mark.parametrize(
    ("version", "image"),
    [
        ("v1.13.5", "ghcr.io/siderolabs/installer:v1.13.5"),  # the last legacy line, an older patch release
        ("1.11.0", "ghcr.io/siderolabs/installer:v1.11.0"),  # the oldest supported release, written without "v"
        ("v1.14.0-rc.1", f"factory.talos.dev/metal-installer/{EMPTY_SCHEMATIC}:v1.14.0-rc.1"),  # the boundary: first factory line
        ("v1.15.2", f"factory.talos.dev/metal-installer/{EMPTY_SCHEMATIC}:v1.15.2"),
    ],
)
def test_a_full_release_picks_its_own_installer_tag(version, image, tmp_path, talos_oracles):
    """The image tag is the release's own (helpers.DefaultImage appends the talosctl release tag, gen/config.go)."""
    contract = str(Contract.parse(version))
    for docs in genconfig(tmp_path, talos_oracles, version):
        assert install_of(docs, contract) == ("/dev/sda", image)


def test_explicit_install_image_wins(tmp_path, talos_oracles):
    """An explicit --install-image replaces only the image default (gen/config.go)."""
    image = "factory.talos.dev/metal-installer/abc:v1.14.0"
    for docs in genconfig(tmp_path, talos_oracles, "v1.14", "--install-image", image):
        assert install_of(docs, "v1.14") == ("/dev/sda", image)


# -- case 2: the stability test's "with overrides" flavour --------------------------------------------

# The options of TestConfigEncodingStability's "with overrides" (siderolabs/talos
# pkg/machinery/config/types/v1alpha1/v1alpha1_stability_test.go), and its patches
# (testdata/stability/patch.yaml from v1.14, patch-pre14.yaml before), restated as inputs.
OVERRIDES = dict(
    additional_sans=["foo", "bar"], allow_scheduling_on_control_planes=True, dns_domain="example.com",
    install_disk="/dev/vda", install_extra_kernel_args=["foo=bar", "bar=baz"], local_api_server_port=5443,
    sysctls={"foo": "bar"}, cni_urls=["https://example.com/cni.yaml"],
    registry_mirrors={"ghcr.io": ["https://ghcr.io.my-mirror.com"]},
)
PATCH_V14 = "apiVersion: v1alpha1\nkind: KubeletConfig\nclusterDNS:\n  - 3.3.3.3\n"
PATCH_PRE14 = ("machine:\n  kubelet:\n    extraMounts:\n      - source: /var/opt\n        destination: /var/opt\n"
               "        type: bind\n        options:\n          - rshared\n")

MULTIDOC_COMMON = [
    "v1alpha1", "DiscoveryServiceConfig/default", "DiscoveryIdentityConfig", "UnattendedInstallConfig", "ResolverConfig",
    "SysctlConfig", "VolumeConfig/EPHEMERAL", "FilesystemTrimConfig", "SecurityProfileConfig", "RegistryMirrorConfig/ghcr.io",
    "HostnameConfig", "KubeClusterConfig", "KubeNodeConfig", "KubeletConfig", "KubeNetworkConfig", "KubeAPIServerCAConfig",
    "KubePrismConfig",
]
MULTIDOC_CONTROLPLANE = [
    "KubeAggregatorCAConfig", "KubeAdmissionControlConfig/PodSecurity", "KubeAuditPolicyConfig", "KubeAuthenticationConfig",
    "KubeAuthorizerConfig/node", "KubeAuthorizerConfig/rbac", "KubeEtcdEncryptionConfig", "KubeServiceAccountConfig",
    "KubeAPIServerConfig", "KubeControllerManagerConfig", "KubeSchedulerConfig", "KubeProxyConfig", "KubeCoreDNSConfig",
    "KubeExternalManifestConfig/custom-cni",
]
EXPECTED_ORDER = {
    "v1.11": {"controlplane": ["v1alpha1"], "worker": ["v1alpha1"]},
    "v1.12": {r: ["v1alpha1", "RegistryMirrorConfig/ghcr.io", "HostnameConfig"] for r in ("controlplane", "worker")},
    "v1.13": {r: ["v1alpha1", "RegistryMirrorConfig/ghcr.io", "HostnameConfig"] for r in ("controlplane", "worker")},
    "v1.14": {"controlplane": MULTIDOC_COMMON + MULTIDOC_CONTROLPLANE, "worker": MULTIDOC_COMMON},
    "v1.15": {"controlplane": MULTIDOC_COMMON + MULTIDOC_CONTROLPLANE, "worker": MULTIDOC_COMMON},
}


def overrides(base_options, contract: str):
    patch = PATCH_V14 if Contract.parse(contract).multidoc_kubernetes else PATCH_PRE14
    return generate(base_options(contract, config_patches=[patch], **OVERRIDES))


def names(docs: list[dict]) -> list[str]:
    return [d.get("kind", "v1alpha1") + (f"/{d['name']}" if "kind" in d and "name" in d else "") for d in docs]


@pytest.mark.parametrize("role", ["controlplane", "worker"])
@pytest.mark.parametrize("contract", SUPPORTED_CONTRACTS)
def test_overrides_document_names_and_order_match_talos(contract, role, base_options):
    """Document kinds, names and order of testdata/stability/<contract>/overrides-<role>.yaml in siderolabs/talos,
    compared at tags v1.14.0-rc.1 (v1.11–v1.14) and main of 2026-08-21 (v1.11–v1.15): the external CNI manifest is
    `KubeExternalManifestConfig` named `custom-cni`, after KubeCoreDNSConfig (generate/kubernetes.go)."""
    assert names(overrides(base_options, contract).documents(role)) == EXPECTED_ORDER[contract][role]


@pytest.mark.parametrize("role", ["controlplane", "worker"])
@pytest.mark.parametrize("contract", SUPPORTED_CONTRACTS)
def test_overrides_install_settings_match_talos(contract, role, base_options):
    """The install settings of overrides-<role>.yaml (siderolabs/talos stability testdata, v1.14.0-rc.1 and main):
    before v1.14 `.machine.install` with the disk, the extra kernel args, wipe false and, from v1.12,
    grubUseUKICmdline true; from v1.14 an UnattendedInstallConfig with `installer: {}` (no image given to the
    library), the disk as a CEL selector and wipe false, and no kernel args anywhere."""
    docs = overrides(base_options, contract).documents(role)
    if Contract.parse(contract).multidoc_kubernetes:
        (unattended,) = [d for d in docs if d.get("kind") == "UnattendedInstallConfig"]
        assert unattended == {
            "apiVersion": "v1alpha1", "kind": "UnattendedInstallConfig", "installer": {},
            "provisioning": {"diskSelector": {"match": 'disk.dev_path == "/dev/vda"'}, "wipe": False},
        }
        assert "foo=bar" not in yaml.safe_dump_all(docs)
    else:
        expected = {"disk": "/dev/vda", "extraKernelArgs": ["foo=bar", "bar=baz"], "wipe": False}
        if Contract.parse(contract).at_least(12):
            expected["grubUseUKICmdline"] = True
        assert docs[0]["machine"]["install"] == expected


@pytest.mark.parametrize("contract", ["v1.14", "v1.15"])
def test_overrides_custom_cni_and_patch_match_talos(contract, base_options):
    """overrides-controlplane.yaml (siderolabs/talos stability testdata, main): `name: custom-cni`, the URL,
    no KubeFlannelCNIConfig; the KubeletConfig patch adds clusterDNS to the generated document."""
    docs = overrides(base_options, contract).controlplane
    assert docs[-1] == {"apiVersion": "v1alpha1", "kind": "KubeExternalManifestConfig", "name": "custom-cni",
                        "url": "https://example.com/cni.yaml"}
    (kubelet,) = [d for d in docs if d.get("kind") == "KubeletConfig"]
    assert kubelet == {"apiVersion": "v1alpha1", "kind": "KubeletConfig", "image": "ghcr.io/siderolabs/kubelet:v1.28.0",
                       "config": {}, "defaultRuntimeSeccompProfileEnabled": True, "clusterDNS": ["3.3.3.3"]}


def test_further_cni_urls_get_numbered_names(base_options):
    """talosctl takes one CNI URL; tierzero's extra ones must not collide with `custom-cni` (a duplicate
    document name is refused by Talos' config loader)."""
    docs = generate(base_options("v1.14", cni_urls=["https://a/cni.yaml", "https://b/cni.yaml"])).controlplane
    manifests = [d for d in docs if d.get("kind") == "KubeExternalManifestConfig"]
    assert [(d["name"], d["url"]) for d in manifests] == [("custom-cni", "https://a/cni.yaml"), ("custom-cni-2", "https://b/cni.yaml")]


# -- case 1: talos validate applies Talos' install-mode rules ----------------------------------------


@pytest.mark.parametrize("contract", SUPPORTED_CONTRACTS)
def test_validate_refuses_a_metal_config_with_no_install_target(contract, tmp_path, talos_oracles, capsys):
    """The talosctl library output without an install disk (shared/oracles base-controlplane.yaml) cannot install
    from an ISO: its `.machine.install` has neither disk nor selector, "either install disk or diskSelector should be
    defined" (v1alpha1_validation.go, v1.11.6–v1.13.9); from v1.14 there is no UnattendedInstallConfig, so the node
    never installs. In cloud mode the same file is valid."""
    path = talos_oracles / "stability" / contract / "base-controlplane.yaml"
    assert run(["talos", "validate", str(path), "--talos-version", contract]) == 1
    err = capsys.readouterr().err
    assert "metal mode (assumed" in err
    assert ("UnattendedInstallConfig" if Contract.parse(contract).multidoc_kubernetes else "either install disk or diskSelector") in err
    assert run(["talos", "validate", str(path), "--talos-version", contract, "--mode", "cloud"]) == 0
    assert "valid for Talos" in capsys.readouterr().out


@pytest.mark.parametrize("contract", SUPPORTED_CONTRACTS)
def test_validate_json_names_the_mode(contract, tmp_path, talos_oracles, capsys):
    """talosctl validate takes --mode metal|cloud|container (cmd/talosctl/cmd/mgmt/validate.go); tierzero says which it used."""
    docs, _ = genconfig(tmp_path, talos_oracles, contract)
    path = tmp_path / contract / "controlplane.yaml"
    capsys.readouterr()
    assert run(["talos", "validate", str(path), "--talos-version", contract, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["valid"], report["mode"], report["mode_assumed"]) == (True, "metal", True)
    assert run(["talos", "validate", str(path), "--talos-version", contract, "--mode", "container", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["mode_assumed"] is False
    assert run(["talos", "validate", str(path), "--mode", "iso"]) == 2


LEGACY = [c for c in SUPPORTED_CONTRACTS if not Contract.parse(c).multidoc_kubernetes]
MULTIDOC = [c for c in SUPPORTED_CONTRACTS if Contract.parse(c).multidoc_kubernetes]


@pytest.mark.parametrize("contract", LEGACY)
@pytest.mark.parametrize(
    ("install", "expected"),
    [
        (None, 'install instructions are required in "metal" mode (set .machine.install.disk or .machine.install.diskSelector)'),
        ({"wipe": False}, "either install disk or diskSelector should be defined"),
        ({"image": "ghcr.io/siderolabs/installer:v1.13.9"}, "either install disk or diskSelector should be defined"),
        ({"diskSelector": {"size": "<= 256GB"}}, None),
        ({"disk": "/dev/nvme0n1"}, None),
    ],
)
def test_metal_install_needs_a_disk_or_a_selector(contract, install, expected, base_options):
    """v1alpha1_validation.go (v1.11.6–v1.13.9): metal mode needs `.machine.install`, with a disk or a diskSelector."""
    docs = copy.deepcopy(generate(base_options(contract)).worker)
    docs[0]["machine"].pop("install")
    if install is not None:
        docs[0]["machine"]["install"] = install
    problems = [p[3] for p in mode_findings(docs, Contract.parse(contract), "metal")[0]]
    assert problems == ([expected] if expected else [])
    assert mode_findings(docs, Contract.parse(contract), "cloud")[0] == []


@pytest.mark.parametrize("contract", SUPPORTED_CONTRACTS)
def test_extra_kernel_args_conflict_with_uki_cmdline_from_v1_12(contract, base_options):
    """v1alpha1_validation.go from v1.12: "install.extraKernelArgs and install.grubUseUKICmdline can't be used
    together"; v1.11 has no such rule. From v1.14 the generated config has no .machine.install at all."""
    docs = copy.deepcopy(generate(base_options(contract, install_disk="/dev/sda")).worker)
    docs[0]["machine"]["install"] = {"disk": "/dev/sda", "extraKernelArgs": ["console=ttyS0"], "grubUseUKICmdline": True}
    problems = [p[3] for p in mode_findings(docs, Contract.parse(contract), "metal")[0]]
    conflict = "install.extraKernelArgs and install.grubUseUKICmdline can't be used together"
    assert (conflict in problems) is Contract.parse(contract).at_least(12)


@pytest.mark.parametrize("contract", MULTIDOC)
def test_unattended_install_needs_a_disk_selector_and_warns_without_image(contract, base_options):
    """runtime/unattended_install.go (v1.14.0-rc.1, main): ProvisioningSpec.Validate requires the selector; an
    empty installer.image is only a warning."""
    docs = copy.deepcopy(generate(base_options(contract, install_disk="/dev/sda")).worker)
    (unattended,) = [d for d in docs if d.get("kind") == "UnattendedInstallConfig"]
    problems, warnings = mode_findings(docs, Contract.parse(contract), "metal")
    assert problems == [] and any("installer.image is not set" in w for w in warnings)
    unattended["provisioning"]["diskSelector"] = {}
    problems, _ = mode_findings(docs, Contract.parse(contract), "metal")
    assert [p[2:] for p in problems] == [(".provisioning.diskSelector.match", "provisioning.volumeSelector.match is required")]


@pytest.mark.parametrize("contract", SUPPORTED_CONTRACTS)
def test_container_mode_needs_host_dns(contract, base_options):
    """Container mode needs host DNS enabled and forwarding kube-dns: v1alpha1_validation.go (.machine.features.hostDNS,
    v1.11.6–v1.13.9), config/container/validate.go (ResolverConfig.hostDNS, v1.14.0-rc.1). Generated configs have it."""
    docs = copy.deepcopy(generate(base_options(contract)).worker)
    assert mode_findings(docs, Contract.parse(contract), "container")[0] == []
    if Contract.parse(contract).multidoc_kubernetes:
        next(d for d in docs if d.get("kind") == "ResolverConfig")["hostDNS"]["forwardKubeDNSToHost"] = False
    else:
        docs[0]["machine"]["features"]["hostDNS"]["forwardKubeDNSToHost"] = False
    problems = [p[3] for p in mode_findings(docs, Contract.parse(contract), "container")[0]]
    assert len(problems) == 1 and "forward" in problems[0].lower()
