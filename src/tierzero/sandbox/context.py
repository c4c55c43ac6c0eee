"""What a stand-in is given when the sandbox starts it, and what it hands to the stand-ins after it.

A stand-in is a `StandIn(name, start)`: `start(box)` brings it up for `box.spec` (listening on
127.0.0.1, port 0), adds its endpoints to `box.connections`, and returns how to stop it. What
it must share with later stand-ins (or with tests) it puts under a typed `Handle` its module
declares, e.g. `SERVER: Handle[FakePveServer] = Handle("fakepve")`; a later stand-in reads it
with `box.get(fakepve.SERVER)` (None when that stand-in was not started) and imports the module
that declares it, so the dependency is visible and runs one way, from later to earlier.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from tierzero.adapters.connections import Connections

if TYPE_CHECKING:
    from tierzero.sandbox.world import World
    from tierzero.spec import Platform
    from tierzero.workspace import Workspace

T = TypeVar("T")
Stop = Callable[[], None]


@dataclass(frozen=True)
class SandboxOptions:
    """Knobs the sandbox's stand-ins read (tests set them; `tierzero deploy --target sandbox` uses
    the defaults). Times are seconds of the stand-ins' compressed clock."""

    kube_fail_first: int = 0  # requests the Kubernetes stand-in answers 503 before it is up
    talos_reboot_seconds: float = 0.2  # a Talos stand-in node's reboot
    pve_time_scale: float = 0.0  # fakepve's task durations (0: instant)
    pve_kvm: bool = True  # the stand-in hosts have /dev/kvm (a host saved in the world keeps its own)
    oci_full_ads: tuple[str, ...] = ()  # availability domains out of A1 capacity (creates there fail)
    oci_no_a1_ads: tuple[str, ...] = ()  # availability domains that do not offer the A1 shape at all
    pve_storage_layout: str = "lvmthin"  # the installer's storage layout: "lvmthin" (its default) or "zfs"
    image_factory_enterprise: bool = False  # the Image Factory serves checksums (an Enterprise build)
    git_forge_api: bool = True  # the run gets the Git host's API token (False: deploy keys are added by hand)
    flux_interval_scale: float = 1 / 60  # Flux's intervals on the sandbox clock (1m -> 1 s, 1h -> 1 min)
    oci_account: str | None = None  # "always-free" or "pay-as-you-go": the tenancy as it really is (None: as the spec says)
    bastion: bool = True  # a cloud spec's private addresses are reached only through its bastion (sandbox/bastion.py)


@dataclass(frozen=True)
class Handle(Generic[T]):
    """A typed name for something one stand-in hands to the others through `SandboxContext`."""

    name: str


@dataclass
class SandboxContext:
    spec: Platform
    workspace: Workspace
    connections: Connections
    state_dir: Path  # a per-workspace scratch directory for the stand-ins
    options: SandboxOptions = field(default_factory=SandboxOptions)
    world: World | None = None  # None: the sandbox does not persist
    _handles: dict[Handle[Any], Any] = field(default_factory=dict, repr=False)

    def put(self, handle: Handle[T], value: T) -> T:
        self._handles[handle] = value
        return value

    def host_key_file(self, name: str) -> Path:
        """The path of stand-in `name`'s SSH host key (ed25519, 0600), made once and kept in the
        state directory: every run listens on new loopback ports, and the workspace's known_hosts
        entries must stay valid from one run to the next."""
        key_file = Path(self.state_dir) / f"{name}_host_key"
        if not key_file.exists():
            import asyncssh

            from tierzero.workspace.layout import write_private

            write_private(key_file, asyncssh.generate_private_key("ssh-ed25519").export_private_key())
        return key_file

    def get(self, handle: Handle[T]) -> T | None:
        return cast("T | None", self._handles.get(handle))

    def __getitem__(self, handle: Handle[T]) -> T:
        try:
            return cast(T, self._handles[handle])
        except KeyError:
            raise KeyError(f"the {handle.name!r} stand-in is not running in this sandbox") from None


@dataclass(frozen=True)
class StandIn:
    """One stand-in: its name (for `Sandbox.start(only=...)`) and how to start it."""

    name: str
    start: Callable[[SandboxContext], Stop]
