"""Talos' runtime-mode rules for a machine config: what `talosctl validate --mode` checks.

A Talos node runs in one of three modes, chosen by its platform (siderolabs/talos
`internal/app/machined/pkg/runtime/mode.go`): `metal` (ISO/PXE boot, installs to a disk:
`RequiresInstall()`), `cloud` (a disk image that is already installed: nocloud, oracle, aws, …)
and `container` (talosctl cluster create with docker). The rules below are Talos' own; the
source of each is beside it.
"""

from __future__ import annotations

from typing import Any, Literal

from tierzero.render.talos.contract import Contract
from tierzero.render.talos.patches import document_key
from tierzero.render.talos.yamlio import Document

Mode = Literal["metal", "cloud", "container"]
MODES: tuple[Mode, ...] = ("metal", "cloud", "container")
DEFAULT_MODE: Mode = "metal"


def _legacy(docs: list[Document]) -> tuple[int, dict[str, Any]]:
    for index, doc in enumerate(docs):
        if isinstance(doc, dict) and document_key(doc)[0] == "":
            return index, doc
    return 0, {}


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _of_kind(docs: list[Document], kind: str) -> list[tuple[int, dict[str, Any]]]:
    return [(i, d) for i, d in enumerate(docs) if isinstance(d, dict) and d.get("kind") == kind]


def mode_findings(docs: list[Document], contract: Contract, mode: Mode) -> tuple[list[tuple[int, str, str, str]], list[str]]:
    """(document index, kind, path, message) per rule broken in `mode`, and Talos' warnings."""
    problems: list[tuple[int, str, str, str]] = []
    warnings: list[str] = []
    index, config = _legacy(docs)
    machine = _mapping(config.get("machine"))
    install = machine.get("install") if isinstance(machine.get("install"), dict) else None
    if mode == "metal":
        problems += _metal(index, install, docs, contract, warnings)
    if mode == "container":
        problems += _container(index, machine, docs, contract)
    return problems, warnings


def _metal(index: int, install: dict[str, Any] | None, docs: list[Document], contract: Contract, warnings: list[str]) -> list[tuple[int, str, str, str]]:
    problems: list[tuple[int, str, str, str]] = []
    unattended = _of_kind(docs, "UnattendedInstallConfig")
    if install is None and not unattended:
        if contract.multidoc_kubernetes:
            # v1.14 no longer requires .machine.install (v1alpha1_validation.go: "deprecated in favor of the
            # UnattendedInstallConfig"); without either document the node boots the ISO and never installs.
            problems.append((index, "", "", 'metal mode needs an UnattendedInstallConfig document with '
                             'provisioning.diskSelector.match (e.g. disk.dev_path == "/dev/sda"); without it the node '
                             "runs from the boot media and never installs to disk"))
        else:
            # v1alpha1_validation.go (v1.11.6 … v1.13.9): `install instructions are required in "metal" mode`.
            problems.append((index, "", ".machine.install", 'install instructions are required in "metal" mode '
                             "(set .machine.install.disk or .machine.install.diskSelector)"))
    if install is not None:
        if not install.get("disk") and not install.get("diskSelector"):
            # v1alpha1_validation.go, every supported contract.
            problems.append((index, "", ".machine.install", "either install disk or diskSelector should be defined"))
        if install.get("extraKernelArgs") and install.get("grubUseUKICmdline") and contract.at_least(12):
            # v1alpha1_validation.go from v1.12.
            problems.append((index, "", ".machine.install", "install.extraKernelArgs and install.grubUseUKICmdline can't be used together"))
    for doc_index, doc in unattended:
        provisioning = _mapping(doc.get("provisioning"))
        selector = _mapping(provisioning.get("diskSelector"))
        if not selector.get("match"):
            # runtime/unattended_install.go, ProvisioningSpec.Validate.
            problems.append((doc_index, "UnattendedInstallConfig", ".provisioning.diskSelector.match",
                             "provisioning.volumeSelector.match is required"))
        installer = _mapping(doc.get("installer"))
        if not installer.get("image"):
            # runtime/unattended_install.go, Validate: a warning, not an error.
            warnings.append("installer.image is not set, if Talos is not booted from asset built by Image Factory, installation will fail")
    return problems


def _container(index: int, machine: dict[str, Any], docs: list[Document], contract: Contract) -> list[tuple[int, str, str, str]]:
    resolvers = _of_kind(docs, "ResolverConfig")
    if contract.multidoc_kubernetes:
        # config/container/validate.go (v1.14): the ResolverConfig's hostDNS must be on and forward kube-dns.
        with_host_dns = [(i, d["hostDNS"]) for i, d in resolvers if isinstance(d.get("hostDNS"), dict)]
        if not with_host_dns:
            return [(index, "", "", "hostDNS config is required in container mode (a ResolverConfig with hostDNS)")]
        doc_index, host_dns = with_host_dns[0]
        problems = []
        if not host_dns.get("enabled"):
            problems.append((doc_index, "ResolverConfig", ".hostDNS.enabled", "hostDNS must be enabled in container mode"))
        if not host_dns.get("forwardKubeDNSToHost"):
            problems.append((doc_index, "ResolverConfig", ".hostDNS.forwardKubeDNSToHost", "forwardKubeDNSToHost must be enabled in container mode"))
        return problems
    # v1alpha1_validation.go (v1.11.6 … v1.13.9), InContainer().
    features = _mapping(machine.get("features"))
    host_dns = _mapping(features.get("hostDNS"))
    problems = []
    if not host_dns.get("enabled"):
        problems.append((index, "", ".machine.features.hostDNS.enabled", "feature HostDNS should be enabled in container mode"))
    if not host_dns.get("forwardKubeDNSToHost"):
        problems.append((index, "", ".machine.features.hostDNS.forwardKubeDNSToHost",
                         "feature HostDNS should forward kube-dns to host in container mode"))
    return problems
