"""The sandbox: every stand-in started on loopback (port 0, assigned) and a `Connections` whose
endpoints point the real clients at them. Production code is the same in both targets; only
this lookup differs.

Adding a stand-in
-----------------
One module (or, for a large server, one package) under `tierzero/sandbox/` and one line in
`STANDINS` below. The module holds the server, its stock world and how to start it::

    # tierzero/sandbox/image_factory.py
    SERVER: Handle[ImageFactoryServer] = Handle("image-factory")   # what later stand-ins may read

    def _start(box: SandboxContext) -> Stop:
        server = box.put(SERVER, ImageFactoryServer(...).start())    # listen on 127.0.0.1, port 0
        box.connections.add("http", "image-factory", Endpoint("127.0.0.1", server.port, scheme="http"))
        return server.stop                                           # how to stop it

    STANDIN = StandIn("image-factory", _start)

`box` (`tierzero.sandbox.context.SandboxContext`) carries `spec`, `workspace`, `connections`
(add endpoints, or set `ssh_key` / `known_hosts`), `state_dir` (a per-workspace scratch
directory), `options` (`SandboxOptions`, typed knobs tests set) and `world`
(`tierzero.sandbox.world.World`, or None when the sandbox does not persist). The stock world is
what the real system holds after a plain install; a stand-in loads its document with
`box.world.file(NAME).load()`, adds what the spec asks for that the saved world lacks, and saves
the document after every change a client could observe. A stand-in that needs another one's
server reads it with `box.get(other.HANDLE)`, importing `other`: so it must come after `other`
in `STANDINS`. The modules import nothing from this one and register nothing at import.

The world persists in the workspace (`Sandbox(..., persist=False)` for a throwaway one), so
`tierzero deploy --target sandbox` run twice skips what the first run finished, and a killed
run resumes against the VMs, nodes and objects it left behind.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tierzero.adapters.connections import Connections
from tierzero.sandbox import bastion, clock, debian_cloud, fakepve, flux, git_forge, guests, image_factory, infisical, internet, kubernetes, oci, oci_compute, pve_hosts, talos, tofu_twin
from tierzero.sandbox.context import SandboxContext, SandboxOptions, StandIn, Stop

if TYPE_CHECKING:
    from tierzero.sandbox.world import World
    from tierzero.spec import Platform
    from tierzero.workspace import Workspace

# Started in this order, stopped in reverse. A stand-in that links to another comes after it:
# Talos to Kubernetes (its kubeconfig), fakepve to the SSH hosts (their pveum tokens and ACLs),
# guests to fakepve, the hosts and Talos (a VM start boots a Talos machine), OCI's compute to Talos (an instance
# launch boots one), Infisical to the hosts (pct exec in its container), Flux to Kubernetes and the Git host (it
# reconciles from one into the other), the bastion to all of them.
STANDINS: tuple[StandIn, ...] = (
    kubernetes.STANDIN,
    oci.STANDIN,
    debian_cloud.STANDIN,
    internet.STANDIN,
    git_forge.STANDIN,
    flux.STANDIN,
    tofu_twin.STANDIN,
    clock.STANDIN,
    image_factory.STANDIN,
    talos.STANDIN,
    oci_compute.STANDIN,
    pve_hosts.STANDIN,
    fakepve.STANDIN,
    guests.STANDIN,
    infisical.STANDIN,
    bastion.STANDIN,  # last: it hands channels to every stand-in playing a private address
)


def standin_names(standins: Iterable[StandIn] = STANDINS) -> list[str]:
    return [s.name for s in standins]


class Sandbox:
    """Start the stand-ins for a spec; `connections` then reaches them all. `options` are
    `SandboxOptions` fields (an unknown one is a TypeError)."""

    def __init__(self, spec: Platform, workspace: Workspace, *, persist: bool = True,
                 standins: Sequence[StandIn] = STANDINS, **options: Any) -> None:
        known = {f.name for f in fields(SandboxOptions)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise TypeError(f"unknown sandbox options {unknown}; known: {sorted(known)}")
        self.spec, self.workspace, self.persist = spec, workspace, persist
        self.options = SandboxOptions(**options)
        self.standins = tuple(standins)
        self.world: World | None = None
        self.connections = Connections(target="sandbox")
        self._stops: list[tuple[str, Stop]] = []
        self.context: SandboxContext | None = None

    def start(self, only: Iterable[str] | None = None) -> Connections:
        wanted = None if only is None else set(only)
        if wanted is not None and wanted - set(standin_names(self.standins)):
            raise ValueError(f"no stand-ins named {sorted(wanted - set(standin_names(self.standins)))}; "
                             f"known: {standin_names(self.standins)}")
        state_dir = Path(self.workspace.root) / "sandbox"
        state_dir.mkdir(parents=True, exist_ok=True)
        if self.persist:
            from tierzero.sandbox.world import World
            from tierzero.workspace.keys import create_age_identity

            if not self.workspace.age_key.exists():
                Path(self.workspace.root).mkdir(parents=True, exist_ok=True)
                create_age_identity(self.workspace)
            self.world = World.open(self.workspace)
        self.context = SandboxContext(self.spec, self.workspace, self.connections, state_dir, options=self.options, world=self.world)
        try:
            for standin in self.standins:
                if wanted is None or standin.name in wanted:
                    self._stops.append((standin.name, standin.start(self.context)))
        except BaseException:
            self.stop()
            raise
        return self.connections

    def stop(self) -> None:
        while self._stops:
            _, stop = self._stops.pop()
            try:
                stop()
            except Exception:  # noqa: BLE001 - stopping the rest matters more
                pass

    def __enter__(self) -> Connections:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
