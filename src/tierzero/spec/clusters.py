"""clusters[]: Talos Kubernetes clusters, as VMs on the Proxmox hosts or directly on OCI A1 instances."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from tierzero.spec.addons import Addons
from tierzero.spec.backups import EtcdBackups
from tierzero.spec.base import DHCP, Cidr, InterfaceAddress, IPAddress, MacAddress, Model, Name
from tierzero.spec.refs import SecretRef

# A patch is a strategic-merge mapping, an RFC 6902 list of operations, or a string:
# "@path/to/file.yaml" or inline YAML/JSON.
Patch = dict[str, Any] | list[dict[str, Any]] | str
Role = Literal["controlplane", "worker"]


class Patches(Model):
    cluster: list[Patch] = Field(default_factory=list, description="applied to every node")
    control_plane: list[Patch] = Field(default_factory=list)
    worker: list[Patch] = Field(default_factory=list)


class Node(Model):
    """A Talos node: a VM on a Proxmox host (`node`) or an OCI A1 instance running Talos itself (`instance`)."""

    name: Name
    node: Name | None = Field(default=None, description="the hypervisors.proxmox.nodes entry this VM runs on")
    instance: Name | None = Field(default=None, description=(
        "the cloud.oci.a1_instances entry that runs Talos directly (no Proxmox): it boots the Oracle image and "
        "reads its machine config from the instance metadata (user_data)"))
    vmid: int | None = Field(default=None, ge=100, le=999999999, description="Proxmox VMID; default assigned from 1000 up")
    cores: int = Field(default=2, ge=1, le=128)
    memory_gb: float = Field(default=2.0, ge=1)
    disk_gb: int = Field(default=20, ge=10)
    ip: InterfaceAddress = Field(default=DHCP, description="static address with prefix like 10.10.0.11/24, or dhcp")
    mac: MacAddress | None = None
    patches: list[Patch] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_host(self) -> "Node":
        if bool(self.node) == bool(self.instance):
            raise ValueError("give exactly one of `node` (a Proxmox host the VM runs on) or `instance` (an A1 instance that runs Talos itself)")
        return self

    @property
    def host(self) -> str:
        """The Proxmox host or the A1 instance this node runs on."""
        return self.node or self.instance or ""


class ClusterNetwork(Model):
    pod_cidr: Cidr = "10.244.0.0/16"
    service_cidr: Cidr = "10.96.0.0/12"
    dns_domain: str = Field(default="cluster.local", pattern=r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$")


class Forge(Model):
    """The Git host's API, to register the deploy key (read-only) instead of printing it."""

    kind: Literal["github", "gitea"] = Field(description="github, or gitea (also Forgejo: the same API)")
    api_url: str | None = Field(default=None, pattern=r"^https?://",
                                description="default https://api.github.com (github) or https://<repository host>/api/v1 (gitea)")
    token: SecretRef = Field(description="a token that may add deploy keys to the repository: env:NAME, file:PATH or sops:PATH#key")


class FluxInstall(Model):
    """Where Flux's own manifests (`gotk-components.yaml` of the pinned version) come from. They
    are checked against their recorded sha256 whichever source gives them."""

    components_file: str | None = Field(default=None, description="gotk-components.yaml as `flux install --export` of the pinned version writes it "
                                                                  "(relative to the spec's directory)")
    download: bool = Field(default=False, description="allow a one-time download of the pinned flux CLI from its GitHub release, to render them")


class GitOps(Model):
    engine: Literal["flux", "argocd"] = "flux"
    repo_url: str = Field(pattern=r"^(https://|ssh://|git@)", description="the repository the cluster syncs from; tierzero pushes the rendered tree there")
    branch: str = Field(default="main", pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")
    path: str = Field(default="", description="sub-directory of the repository holding the tree")
    push_url: str | None = Field(default=None, description="where tierzero pushes, when not repo_url: a local path, file://, ssh:// or https://")
    push_key: str | None = Field(default=None, description="the SSH private key file tierzero pushes with (default: your ssh-agent and ~/.ssh/config)")
    token: SecretRef | None = Field(default=None, description="for an https:// push: a token that may push, as env:NAME, file:PATH or sops:PATH#key")
    username: str = Field(default="git", description="the account name sent with `token` (on GitHub, x-access-token also works for app tokens)")
    forge: Forge | None = None
    flux: FluxInstall = Field(default_factory=FluxInstall)


class Cluster(Model):
    name: Name
    talos_version: str = Field(pattern=r"^v1\.\d+\.\d+$", description="a Talos release like v1.11.5")
    kubernetes_version: str = Field(pattern=r"^v?1\.\d+\.\d+$", description="like 1.34.1")
    endpoint: str = Field(pattern=r"^https://[^/\s]+:\d+$", description="the Kubernetes API URL, like https://10.10.0.10:6443")
    vip: IPAddress | None = Field(default=None, description="shared virtual IP the control planes announce")
    network: ClusterNetwork = Field(default_factory=ClusterNetwork)
    arch: Literal["amd64", "arm64"] = "amd64"
    install_disk: str = Field(default="/dev/vda", pattern=r"^/dev/")
    extensions: list[str] = Field(default_factory=lambda: ["siderolabs/qemu-guest-agent"])
    image_factory: str = Field(default="https://factory.talos.dev", pattern=r"^https?://[^/\s]+/?$",
                               description="Talos Image Factory base URL (your own for an air-gapped site); the Proxmox hosts download from it")
    control_planes: list[Node] = Field(min_length=1)
    workers: list[Node] = Field(default_factory=list)
    allow_scheduling_on_control_planes: bool = False
    patches: Patches = Field(default_factory=Patches)
    cni: Literal["cilium", "none"] = "cilium"
    gitops: GitOps | None = None
    addons: Addons = Field(default_factory=Addons)
    etcd_backups: EtcdBackups = Field(default_factory=EtcdBackups)
    image_ocid: str | None = Field(default=None, pattern=r"^ocid1\.image\.", description=(
        "for nodes on A1 instances: an existing Talos custom image to boot (skips the Image Factory download, the "
        "Object Storage upload and the import, which an Always-Free-only tenancy refuses: custom-image-count is 0 there)"))

    @field_validator("extensions")
    @classmethod
    def _extension_names(cls, value: list[str]) -> list[str]:
        for ext in value:
            if "/" not in ext:
                raise ValueError(f"extension {ext!r} should be an Image Factory name like siderolabs/qemu-guest-agent")
        return value

    @property
    def talos_contract(self) -> str:
        """The version contract, like v1.11, that decides the machine-config format."""
        return ".".join(self.talos_version.split(".")[:2])

    @property
    def kubernetes_semver(self) -> str:
        return self.kubernetes_version.lstrip("v")

    @property
    def on_instances(self) -> bool:
        """Whether the nodes are OCI A1 instances running Talos directly (the oci-talos design), not Proxmox VMs."""
        return any(n.instance for _, n in self.nodes())

    def nodes(self) -> list[tuple[Role, Node]]:
        return [("controlplane", n) for n in self.control_planes] + [("worker", n) for n in self.workers]

    def node(self, name: str) -> Node:
        """The node named `name`; KeyError naming the cluster when there is none."""
        return self.node_and_role(name)[1]

    def node_and_role(self, name: str) -> tuple[Role, Node]:
        for role, node in self.nodes():
            if node.name == name:
                return role, node
        raise KeyError(f"cluster {self.name} has no node {name!r}")
