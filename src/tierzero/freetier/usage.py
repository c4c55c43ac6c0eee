"""What a tenancy holds, as the free tier counts it: instances, volumes, backups, load balancers, addresses, VCNs."""

from __future__ import annotations

from dataclasses import dataclass, field

A1_SHAPE = "VM.Standard.A1.Flex"
MICRO_SHAPE = "VM.Standard.E2.1.Micro"


@dataclass(frozen=True)
class Instance:
    id: str
    shape: str
    ocpus: float
    memory_gb: float
    boot_volume_gb: float = 50.0


@dataclass(frozen=True)
class Volume:
    id: str
    size_gb: float


@dataclass(frozen=True)
class Backup:
    id: str
    size_gb: float


@dataclass(frozen=True)
class LoadBalancer:
    id: str
    shape: str = "flexible"
    min_mbps: float = 10.0
    max_mbps: float = 10.0


@dataclass
class Usage:
    """Everything in the tenancy that the free tier counts, in a stable order (existing resources first)."""

    instances: list[Instance] = field(default_factory=list)
    volumes: list[Volume] = field(default_factory=list)
    backups: list[Backup] = field(default_factory=list)
    load_balancers: list[LoadBalancer] = field(default_factory=list)
    reserved_ips: list[str] = field(default_factory=list)
    vcns: list[str] = field(default_factory=list)
    hsm_key_versions: list[str] = field(default_factory=list)  # one id per HSM-protected key version
    private_vaults: list[str] = field(default_factory=list)  # VIRTUAL_PRIVATE vaults: never free
    network_load_balancers: list[str] = field(default_factory=list)
    custom_images: list[str] = field(default_factory=list)  # custom images imported (CreateImage), not platform images
    always_free_only: bool = True  # the account type: an upgraded (Pay As You Go) tenancy may hold custom images
    object_storage_gb: float = 0.0
    egress_gb_month: float = 0.0

    def a1(self) -> list[Instance]:
        return [i for i in self.instances if i.shape == A1_SHAPE]

    def micro(self) -> list[Instance]:
        return [i for i in self.instances if i.shape == MICRO_SHAPE]

    def paid(self) -> list[Instance]:
        return [i for i in self.instances if i.shape not in (A1_SHAPE, MICRO_SHAPE)]

    def storage_gb(self) -> float:
        return sum(i.boot_volume_gb for i in self.instances) + sum(v.size_gb for v in self.volumes)
