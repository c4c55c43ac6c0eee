"""The seams between the phases and the clients, in the manner of httpx's transports: what a phase
may call on a Talos node, a Kubernetes cluster, a Proxmox VE API, OCI and a Git remote. The real
clients (`TalosClient`, `Kube`, `ProxmoxClient`, `Oci`) satisfy these protocols, and so must
every fake a test plugs in through a phase's hooks: one that drifts fails type checking (mypy
runs in CI), not at 2 a.m. Values the calls return are plain frozen dataclasses defined here,
so neither side needs the other's heavy imports (grpc, the cloud SDKs)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from tierzero.adapters.git import CommitInfo
from tierzero.adapters.kubernetes import NodeStatus

ApplyMode = Literal["auto", "reboot", "no_reboot", "staged", "try"]


# ---------------------------------------------------------------------------- Talos

@dataclass(frozen=True)
class VersionInfo:
    tag: str
    sha: str
    os: str
    arch: str
    platform: str
    platform_mode: str
    hostname: str


@dataclass(frozen=True)
class ApplyResult:
    mode: str  # the mode the node actually chose, e.g. "reboot" in maintenance
    details: str
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class EtcdMember:
    id: int
    hostname: str
    peer_urls: tuple[str, ...]
    client_urls: tuple[str, ...]
    is_learner: bool


@dataclass(frozen=True)
class ServiceStatus:
    id: str
    state: str  # "Running", "Preparing", "Waiting", "Finished", ...
    healthy: bool
    health_unknown: bool
    message: str

    @property
    def ok(self) -> bool:
        return self.state == "Running" and (self.healthy or self.health_unknown)


class TalosMaintenanceApi(Protocol):
    """A node booted without its machine config (maintenance mode), reached without a client
    certificate: `apply_configuration` works on every Talos release, `version` only from 1.13
    on (older ones refuse it with `TalosNotImplemented`). Errors are `OperationError`s;
    `TalosUnavailable` marks the retryable ones (`TalosTLSError`: the node is configured)."""

    async def version(self, timeout: float | None = None) -> VersionInfo: ...

    async def apply_configuration(self, config: bytes | str, mode: ApplyMode = "auto", *, dry_run: bool = False) -> ApplyResult: ...

    async def close(self) -> None: ...


class TalosApi(TalosMaintenanceApi, Protocol):
    """A configured node's Talos API, over mutual TLS with the cluster's talosconfig."""

    async def bootstrap(self, *, recover_etcd: bool = False) -> bool: ...

    async def etcd_members(self) -> list[EtcdMember]: ...

    async def kubeconfig(self) -> bytes: ...

    async def services(self) -> list[ServiceStatus]: ...

    async def upgrade(self, image: str, *, force: bool = False) -> str: ...

    async def etcd_snapshot(self) -> bytes: ...

    async def etcd_recover(self, snapshot: bytes) -> None: ...


# ---------------------------------------------------------------------------- Kubernetes

class KubernetesNodes(Protocol):
    """The cluster's API server version and its nodes (blocking calls: run them in a thread)."""

    def version(self) -> str: ...

    def nodes(self) -> list[NodeStatus]: ...


class KubernetesApi(KubernetesNodes, Protocol):
    """Objects by apiVersion and kind; `apply` creates or replaces: ("created"|"replaced"|"unchanged", object)."""

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None: ...

    def list(self, api_version: str, kind: str, namespace: str | None) -> list[dict[str, Any]]: ...

    def apply(self, obj: dict[str, Any]) -> tuple[str, dict[str, Any]]: ...

    def patch(self, api_version: str, kind: str, name: str, namespace: str | None, patch: dict[str, Any]) -> dict[str, Any]: ...

    def delete(self, obj: dict[str, Any]) -> bool: ...


# ---------------------------------------------------------------------------- Proxmox VE

class ProxmoxApi(Protocol):
    """The Proxmox VE API of one node; paths as in the API viewer (`nodes/{node}/qemu`). Worker
    tasks are waited for (`task`); failures are `OperationError`s with a remedy."""

    async def call(self, method: str, path: str, **params: Any) -> Any: ...

    async def task(self, method: str, path: str, what: str, **params: Any) -> str: ...

    async def cluster_status(self) -> list[dict[str, Any]]: ...

    async def guests(self) -> list[dict[str, Any]]: ...  # GET /cluster/resources?type=vm

    async def storage_content(self, node: str, storage: str, content: str | None = None) -> list[dict[str, Any]]: ...

    async def download_url(self, node: str, storage: str, *, url: str, filename: str, content: str,
                           checksum: str | None = None, algorithm: str = "sha256", **extra: Any) -> str: ...

    async def find_guest(self, *, vmid: int | None = None, name: str | None = None, kind: str | None = None) -> dict[str, Any] | None: ...

    async def create_vm(self, node: str, vmid: int, **config: Any) -> str: ...

    async def vm_config(self, node: str, vmid: int) -> dict[str, Any]: ...

    async def set_vm_config(self, node: str, vmid: int, **changes: Any) -> None: ...

    async def resize_vm_disk(self, node: str, vmid: int, disk: str, size: str) -> None: ...

    async def vm_status(self, node: str, vmid: int) -> str: ...

    async def start_vm(self, node: str, vmid: int) -> None: ...

    async def stop_vm(self, node: str, vmid: int) -> None: ...

    async def delete_vm(self, node: str, vmid: int, purge: bool = True) -> None: ...

    async def create_lxc(self, node: str, vmid: int, **config: Any) -> str: ...

    async def lxc_config(self, node: str, vmid: int) -> dict[str, Any]: ...

    async def lxc_status(self, node: str, vmid: int) -> str: ...

    async def start_lxc(self, node: str, vmid: int) -> None: ...

    async def stop_lxc(self, node: str, vmid: int) -> None: ...

    async def delete_lxc(self, node: str, vmid: int) -> None: ...


# ---------------------------------------------------------------------------- Image Factory

class ImageFactoryApi(Protocol):
    """A Talos Image Factory (`tierzero.adapters.image_factory.ImageFactory`)."""

    base_url: str  # where the Proxmox hosts download from

    async def register(self, schematic_yaml: str) -> str: ...  # the schematic ID the factory gives

    async def checksum(self, image_url: str) -> str | None: ...  # sha256, when the factory publishes it

    def close(self) -> None: ...


# ---------------------------------------------------------------------------- Git

class GitRemote(Protocol):
    """One branch of the repository a cluster's GitOps engine syncs from, with its clone in the
    workspace (`tierzero.adapters.git.GitRemote`): the push fetches the branch, reads its
    history and files, writes one commit and pushes it, never forced. Blocking calls;
    failures are `OperationError`s naming the remote."""

    branch: str
    shown_url: str

    def head(self) -> str | None:
        """The branch's commit id on the remote, or None when the branch does not exist."""
        ...

    def fetch(self) -> str | None:
        """Bring the branch into the clone; its commit id, or None."""
        ...

    def history(self, commit: str, limit: int = 200) -> list[CommitInfo]: ...

    def files(self, commit: str | None) -> dict[str, str]:
        """Path -> blob id of every file of a commit ({} for None)."""
        ...

    def read(self, commit: str, path: str) -> bytes: ...

    def tree_of(self, commit: str) -> str: ...

    def contains(self, commit: str, ancestor: str) -> bool: ...

    def commit(self, tree: Mapping[str, bytes], parent: str | None, message: str, keep: Mapping[str, str] | None = None) -> str:
        """A commit whose content is `tree` plus the kept blobs, on top of `parent`; its id."""
        ...

    def push(self, commit: str) -> None:
        """Move the remote branch to `commit`, fast-forward only."""
        ...
