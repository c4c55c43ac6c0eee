"""hypervisors.proxmox: the Proxmox VE cluster the Talos VMs run on."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from tierzero.spec.base import Cidr, IPAddress, Model, Name
from tierzero.spec.refs import KeyPath, SecretRef


class SSH(Model):
    user: str = "root"
    port: int = Field(default=22, ge=1, le=65535)
    private_key: KeyPath = Field(default=".tierzero/id_ed25519", description="path of the private key file (never the key itself)")


class ProxmoxNode(Model):
    """A Proxmox VE host: a cloud instance (`instance`) or an explicit host (`address`)."""

    name: Name
    instance: Name | None = Field(default=None, description="name of a cloud.oci.a1_instances entry")
    address: IPAddress | None = Field(default=None, description="management address of an explicit host")
    ssh: SSH = Field(default_factory=SSH)
    api_url: str | None = Field(default=None, pattern=r"^https://", description="default https://ADDRESS:8006")
    token_id: str | None = Field(default=None, pattern=r"^[^@\s]+@[^!\s]+![A-Za-z0-9_\-]+$", description="like root@pam!tierzero")
    token_secret: SecretRef | None = None
    cores: int | None = Field(default=None, ge=1, description="CPU cores of an explicit host")
    memory_gb: float | None = Field(default=None, gt=0, description="memory of an explicit host")
    memory_reserve_gb: float = Field(default=2.0, ge=0, description="memory kept for Proxmox VE itself (and Ceph)")
    osd_devices: list[str] = Field(default_factory=list, description="disks for Ceph OSDs on this node, like /dev/sdb")

    @model_validator(mode="after")
    def _one_kind(self) -> "ProxmoxNode":
        if bool(self.instance) == bool(self.address):
            raise ValueError("give exactly one of `instance` (a cloud instance) or `address` (an explicit host)")
        if self.address and self.memory_gb is None:
            raise ValueError("an explicit host needs `memory_gb` so tierzero can check the VMs fit")
        if (self.token_id is None) != (self.token_secret is None):
            raise ValueError("give both `token_id` and `token_secret`, or neither (tierzero then creates a token)")
        return self


class Ceph(Model):
    enabled: bool = False
    pool: str = "tierzero"
    size: int = Field(default=2, ge=1, le=7)
    min_size: int = Field(default=1, ge=1, le=7)
    osd_device: str | None = Field(default=None, pattern=r"^/dev/", description="same device on every node, like /dev/sdb")
    osd_lv_size_gb: int | None = Field(default=None, ge=5, description="or: carve an LV of this size from the host VG")
    network: Cidr | None = Field(default=None, description="Ceph cluster network; default the node network")

    @model_validator(mode="after")
    def _sizes(self) -> "Ceph":
        if self.min_size > self.size:
            raise ValueError("min_size cannot exceed size")
        if self.enabled and not (self.osd_device or self.osd_lv_size_gb):
            raise ValueError("an enabled Ceph needs `osd_device` or `osd_lv_size_gb` (or per-node osd_devices)")
        return self


class Tailscale(Model):
    enabled: bool = False
    auth_key: SecretRef | None = None
    advertise_routes: list[Cidr] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=lambda: ["tag:tierzero"])

    @model_validator(mode="after")
    def _key(self) -> "Tailscale":
        if self.enabled and not self.auth_key:
            raise ValueError("tailscale is enabled but has no `auth_key` reference")
        return self


class QDevice(Model):
    host: str = Field(description="a micro instance name with role quorum-witness, or an address")
    ssh_user: str | None = Field(default=None, description="SSH user on the witness (sudo if not root); default root for an "
                                 "address, the platform image's user (ubuntu) for a cloud instance")
    ssh_port: int = Field(default=22, ge=1, le=65535)


class ProxmoxPort(Model):
    """How tierzero makes a cloud instance (a Debian arm64 image) a Proxmox VE host. Proxmox VE has
    no official arm64 build: this installs PXVIRT, a community port (formerly Proxmox-Port,
    github.com/jiangcuo), from its repository. Source: jiangcuo/Pxvirt-docs en/installfromdebian.md."""

    port: Literal["pxvirt"] = Field(default="pxvirt", description="the community arm64 port of Proxmox VE")
    version: Literal[8, 9] = Field(default=9, description="its major version: 8 on Debian 12 bookworm, 9 on Debian 13 trixie")
    repository: str = Field(default="https://mirrors.lierfang.com/pxcloud/pxvirt", pattern=r"^https://",
                            description="the port's APT repository (a mirror of it may be given)")
    key_url: str = Field(default="https://mirrors.lierfang.com/pxcloud/lierfang.gpg", pattern=r"^https://",
                         description="the repository's signing key (fetched over HTTPS; its fingerprint is not published)")
    packages: list[str] = Field(default_factory=lambda: ["proxmox-ve", "pve-manager", "qemu-server", "pve-cluster", "ifupdown2"],
                                min_length=1, description="what `apt-get install` installs (the port's documented set)")
    image_user: str = Field(default="debian", pattern=r"^[a-z_][a-z0-9_-]*$",
                            description="the image's default user (passwordless sudo); root SSH is refused until tierzero allows it")

    @property
    def suite(self) -> str:
        """The Debian release (and repository suite) the port's version is built for."""
        return {8: "bookworm", 9: "trixie"}[self.version]


class Proxmox(Model):
    cluster_name: str = Field(pattern=r"^[A-Za-z0-9\-]{1,15}$", description="corosync cluster name: up to 15 letters, digits, '-'")
    nodes: list[ProxmoxNode] = Field(min_length=1)
    storage: str = "local-lvm"
    image_storage: str = Field(default="local", description="storage that holds ISO/disk images and LXC templates")
    bridge: str = "vmbr0"
    vlan: int | None = Field(default=None, ge=1, le=4094)
    network: Cidr = Field(description="the network the VMs and LXCs live on")
    gateway: IPAddress
    nameservers: list[IPAddress] = Field(default_factory=lambda: ["1.1.1.1", "9.9.9.9"])
    ceph: Ceph = Field(default_factory=Ceph)
    qdevice: QDevice | None = None
    tailscale: Tailscale = Field(default_factory=Tailscale)
    allow_software_emulation: bool = Field(default=False, description="accept VMs without /dev/kvm (slow TCG emulation)")
    install: ProxmoxPort = Field(default_factory=ProxmoxPort, description="for hosts on cloud instances: the arm64 port installed there")
    kind: Literal["pve"] = "pve"

    def node(self, name: str) -> ProxmoxNode:
        """The host named `name`; KeyError when the spec has none."""
        found = self.get_node(name)
        if found is None:
            raise KeyError(f"no hypervisors.proxmox.nodes entry named {name!r}")
        return found

    def get_node(self, name: str) -> ProxmoxNode | None:
        return next((n for n in self.nodes if n.name == name), None)


class Hypervisors(Model):
    proxmox: Proxmox
