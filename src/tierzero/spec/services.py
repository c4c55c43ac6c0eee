"""services[]: things next to the clusters, like an Infisical secrets manager on a Proxmox LXC."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tierzero.spec.base import DHCP, InterfaceAddress, Model, Name

EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


class Infisical(Model):
    kind: Literal["infisical"] = "infisical"
    name: Name
    node: Name = Field(description="the hypervisors.proxmox.nodes entry the LXC runs on")
    vmid: int = Field(ge=100, le=999999999)
    cores: int = Field(default=2, ge=1)
    memory_gb: float = Field(default=2.0, ge=1)
    disk_gb: int = Field(default=16, ge=8)
    ip: InterfaceAddress = DHCP
    template: str = Field(default="debian-12-standard", description="LXC appliance template: a file from `pveam available` "
                          "(e.g. debian-12-standard_12.12-1_amd64.tar.zst), or its package name for the newest build the node offers")
    admin_email: str = Field(pattern=EMAIL)
    organization: str = Field(min_length=1)
    infisical_version: str = Field(default="v0.165.16", description="infisical/infisical image tag (needs the admin bootstrap API, 2025 or later)")


Service = Infisical
