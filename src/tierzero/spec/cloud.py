"""cloud.oci: what OpenTofu creates in the tenancy."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from tierzero.spec.base import Cidr, Model, Name
from tierzero.spec.refs import KeyPath, SecretRef

MicroRole = Literal["bastion", "quorum-witness"]


class A1Instance(Model):
    """A VM.Standard.A1.Flex instance: a Proxmox VE host, or a Talos node (a clusters[] node names it as `instance`)."""

    name: Name
    ocpus: int = Field(ge=1, description="whole OCPUs (Ampere A1 cores)")
    memory_gb: int = Field(ge=1, description="memory in GB")
    boot_volume_gb: int = Field(default=50, ge=1, description="boot volume size; 50 GB is the practical minimum")
    availability_domain: str | None = Field(default=None, description="pin to one AD; default: rotate through cloud.oci.availability_domains")


class MicroInstance(Model):
    """A VM.Standard.E2.1.Micro instance (1/8 OCPU, 1 GB)."""

    name: Name
    roles: list[MicroRole] = Field(min_length=1, description="bastion and/or quorum-witness (corosync-qnetd)")
    boot_volume_gb: int = Field(default=50, ge=1)


class ReservedIP(Model):
    name: Name
    instance: Name = Field(description="the instance the address is bound to")


class BlockVolume(Model):
    name: Name
    size_gb: int = Field(ge=50, description="block volumes are at least 50 GB")
    instance: Name


class Network(Model):
    vcn_cidr: Cidr = "10.0.0.0/16"
    subnet_cidr: Cidr = "10.0.1.0/24"
    admin_cidrs: list[Cidr] = Field(min_length=1, description="networks allowed to reach SSH, the Talos API and the Kubernetes API")
    allow_http: bool = Field(default=False, description="open 80/443 to the world")
    allow_icmp: bool = True


class Budget(Model):
    amount: float = Field(default=1.0, gt=0, description="monthly budget in the tenancy's currency")
    alert_email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    alert_threshold_percent: float = Field(default=1.0, gt=0, le=100, description="alert on this share of actual spend (1% of $1 = $0.01)")


class LocalBackend(Model):
    type: Literal["local"] = "local"


class S3Backend(Model):
    """An S3-compatible state bucket (OCI Object Storage's S3 API, MinIO) with lockfile locking."""

    type: Literal["s3"]
    bucket: str
    key: str = "tierzero/cloud.tfstate"
    region: str
    endpoint: str = Field(pattern=r"^https?://", description="the S3 API URL")
    access_key: SecretRef
    secret_key: SecretRef


StateBackend = Annotated[LocalBackend | S3Backend, Field(discriminator="type")]


class HostImage(Model):
    """The image the Proxmox VE hosts on A1 instances boot before the arm64 port is installed. OCI offers no
    Debian platform image, so deploy imports Debian's own arm64 cloud image (the release follows
    hypervisors.proxmox.install.version: 12 bookworm for PXVIRT 8, 13 trixie for PXVIRT 9) as a custom image,
    unless `image_ocid` names one the tenancy already has."""

    image_ocid: str | None = Field(default=None, pattern=r"^ocid1\.image\.", description=(
        "a Debian 12/13 arm64 image the tenancy already has (nothing is downloaded, uploaded or imported)"))
    variant: Literal["genericcloud", "generic"] = Field(default="genericcloud", description=(
        "Debian's cloud image type: genericcloud (no drivers for physical hardware) or generic"))
    mirror: str = Field(default="https://cloud.debian.org/images/cloud", pattern=r"^https://", description=(
        "where Debian's cloud images are published (a mirror of cloud.debian.org/images/cloud)"))
    keyring: KeyPath | None = Field(default=None, description=(
        "a binary OpenPGP keyring (gpg --export KEY > file) that signs the image directory's SHA512SUMS: when "
        "given, SHA512SUMS.sign is checked with gpgv before anything is downloaded; without it only the checksum "
        "(read over HTTPS) is checked, and deploy says so"))


class OCI(Model):
    region: str = Field(pattern=r"^[a-z]+-[a-z]+-\d+$", description="an OCI region identifier like eu-frankfurt-1")
    tenancy_ocid: str = Field(pattern=r"^ocid1\.tenancy\.")
    compartment_ocid: str | None = Field(default=None, pattern=r"^ocid1\.(compartment|tenancy)\.")
    compartment_name: str | None = Field(default=None, description="create this compartment when compartment_ocid is not given")
    config_profile: str = "DEFAULT"
    availability_domains: list[str] = Field(min_length=1)
    network: Network
    a1_instances: list[A1Instance] = Field(default_factory=list)
    micro_instances: list[MicroInstance] = Field(default_factory=list)
    reserved_ips: list[ReservedIP] = Field(default_factory=list)
    block_volumes: list[BlockVolume] = Field(default_factory=list)
    budget: Budget
    account: Literal["always-free", "pay-as-you-go"] = Field(default="always-free", description=(
        "the tenancy's account type. Always-Free-only tenancies have the service limit custom-image-count = 0, so a "
        "Talos image cannot be imported there; upgrading to Pay As You Go lifts that and keeps Always Free resources "
        "free. tierzero checks the real limit (Limits API) before it uploads anything"))
    image_bucket: str = Field(default="tierzero-images", pattern=r"^[A-Za-z0-9_.-]{1,256}$", description=(
        "Object Storage bucket for the Talos images tierzero imports (kept under the 20 GB free)"))
    host_image: HostImage = Field(default_factory=HostImage, description="the Debian arm64 image the Proxmox VE hosts boot")
    state_backend: StateBackend = Field(default_factory=LocalBackend)
    ssh_public_key: KeyPath = Field(default=".tierzero/id_ed25519.pub", description="public key file installed on every instance")
    capacity_hunt_minutes: int = Field(default=60, ge=1, le=7 * 24 * 60, description=(
        "how long to keep retrying A1 creates that fail with 'Out of host capacity' (moving through the ADs, "
        "with backoff) before the cloud step fails; an unattended run can afford hours"))

    @model_validator(mode="after")
    def _compartment(self) -> "OCI":
        if self.compartment_ocid and self.compartment_name:
            raise ValueError("give compartment_ocid (use an existing one) or compartment_name (create one), not both")
        return self

    def instance_names(self) -> list[str]:
        return [i.name for i in self.a1_instances] + [i.name for i in self.micro_instances]


class Cloud(Model):
    oci: OCI
