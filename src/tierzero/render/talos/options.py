"""Inputs and outputs of machine-config generation."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from tierzero.errors import InputError
from tierzero.render.talos import yamlio
from tierzero.render.talos.contract import DEFAULT_CONTRACT, Contract
from tierzero.render.talos.secrets import SecretsBundle
from tierzero.render.talos.yamlio import Document

Role = Literal["controlplane", "worker"]

DEFAULT_KUBERNETES_VERSION = "1.34.1"
DEFAULT_DNS_DOMAIN = "cluster.local"
# talosctl only switches to IPv6 defaults for a bare IPv6 endpoint, which a URL never is.
DEFAULT_POD_SUBNETS = ("10.244.0.0/16",)
DEFAULT_SERVICE_SUBNETS = ("10.96.0.0/12",)


@dataclass
class GenerateOptions:
    """What `talosctl gen config` takes on its command line, as data."""

    cluster_name: str
    endpoint: str
    kubernetes_version: str = DEFAULT_KUBERNETES_VERSION
    talos_contract: str = DEFAULT_CONTRACT
    secrets: SecretsBundle | None = None
    additional_sans: list[str] = field(default_factory=list)
    dns_domain: str = DEFAULT_DNS_DOMAIN
    install_disk: str = ""
    install_image: str = ""
    install_extra_kernel_args: list[str] = field(default_factory=list)
    registry_mirrors: dict[str, list[str]] = field(default_factory=dict)
    local_api_server_port: int = 0
    allow_scheduling_on_control_planes: bool = False
    sysctls: dict[str, str] = field(default_factory=dict)
    cni_urls: list[str] = field(default_factory=list)
    pod_subnets: list[str] = field(default_factory=lambda: list(DEFAULT_POD_SUBNETS))
    service_subnets: list[str] = field(default_factory=lambda: list(DEFAULT_SERVICE_SUBNETS))
    config_patches: list[str] = field(default_factory=list)
    config_patches_control_plane: list[str] = field(default_factory=list)
    config_patches_worker: list[str] = field(default_factory=list)

    @property
    def contract(self) -> Contract:
        return Contract.parse(self.talos_contract)

    @property
    def endpoint_host(self) -> str:
        return urlsplit(self.endpoint).hostname or ""

    @property
    def kubernetes_tag(self) -> str:
        return "v" + self.kubernetes_version.removeprefix("v")

    def check(self) -> None:
        """Reject inputs talosctl would reject, with a message naming the input."""
        if not self.cluster_name.strip():
            raise InputError("cluster name must not be empty")
        parts = urlsplit(self.endpoint)
        if parts.scheme != "https" or not parts.hostname:
            raise InputError(
                f"cluster endpoint {self.endpoint!r} is not an https URL",
                hint="use the Kubernetes API URL, e.g. https://192.168.1.10:6443",
            )
        for label, cidrs in (("pod subnet", self.pod_subnets), ("service subnet", self.service_subnets)):
            if not cidrs:
                raise InputError(f"at least one {label} is required")
            for cidr in cidrs:
                try:
                    ipaddress.ip_network(cidr, strict=True)
                except ValueError as exc:
                    raise InputError(f"invalid {label} {cidr!r}: {exc}") from exc
        if not 0 <= self.local_api_server_port <= 65535:
            raise InputError(f"local API server port {self.local_api_server_port} is out of range 1-65535")
        for url in [*self.cni_urls, *(ep for eps in self.registry_mirrors.values() for ep in eps)]:
            if urlsplit(url).scheme not in ("http", "https"):
                raise InputError(f"{url!r} is not an http(s) URL")


@dataclass
class MachineConfigs:
    """Generated configs per role, each a list of documents (one YAML stream)."""

    controlplane: list[Document]
    worker: list[Document]
    warnings: list[str] = field(default_factory=list)

    def documents(self, role: Role) -> list[Document]:
        return self.controlplane if role == "controlplane" else self.worker

    def to_yaml(self, role: Role) -> str:
        return yamlio.dump_stream(self.documents(role))
