"""Fixtures for the phase tests: a workspace with keys, the SSH and fakepve stand-ins seeded from
a spec, an in-memory secret store, and a runner over the real engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest
from spec_builder import blueprint_data

from tierzero.adapters.connections import Connections, RetryPolicies
from tierzero.adapters.retry import Policy
from tierzero.adapters.ssh import close_all
from tierzero.engine.runner import Runner, Selection
from tierzero.engine.state import StateStore
from tierzero.phases.gitops import GitopsHooks
from tierzero.phases.platform import PlatformHooks
from tierzero.sandbox.fakepve import FakePveServer, start_for_spec
from tierzero.sandbox.guests import link
from tierzero.sandbox.image_factory import start_image_factory
from tierzero.sandbox.pve_hosts import PveHosts, cloud_boots, host_repositories, hosts_for_spec, start_pve_hosts
from memory_secrets import MemorySecrets
from tierzero.spec import Platform
from tierzero.workspace.keys import create_age_identity, create_ssh_keypair
from tierzero.workspace.layout import Workspace



def blueprint(name: str) -> dict[str, Any]:
    return blueprint_data(name.removesuffix(".yaml"))


class Sandbox:
    """The stand-ins and engine for one spec."""

    def __init__(self, tmp: Path, spec: Platform, *, kvm: bool = True, layout: str = "lvmthin") -> None:
        self.spec = spec
        self.ws = Workspace(tmp / ".tierzero")
        self.ws.root.mkdir(parents=True)
        create_ssh_keypair(self.ws)
        create_age_identity(self.ws)
        self.pve: FakePveServer = start_for_spec(spec, layout=layout)
        nodes, witnesses = hosts_for_spec(spec)
        # Hosts on cloud instances boot from their image (no Proxmox VE yet, the image's user, no /dev/kvm).
        self.hosts: PveHosts = start_pve_hosts(nodes, self.ws.ssh_public_key, witnesses=witnesses, kvm=kvm,
                                               cloud=cloud_boots(spec), repositories=host_repositories(spec))
        self.hosts.reboot_seconds = 0.05
        self.factory = start_image_factory()
        self.guests = link(self.pve, self.hosts)  # no Talos here: the tests plug in their own through hooks
        self.conns = Connections(target="sandbox", ssh_key=self.ws.ssh_key, known_hosts=self.ws.root / "known_hosts")
        self.hosts.connections(self.conns)
        self.pve.connections(self.conns)
        self.conns.add("http", "image-factory", self.factory.endpoint())
        fast = Policy(base=0.01, cap=0.05, deadline=1.5)
        self.conns.retry = RetryPolicies(default=fast, wait=fast, lock=Policy(base=0.01, cap=0.05, deadline=1.0))
        self.secrets = MemorySecrets()
        self.state = StateStore.open(self.ws.state_dir, "sandbox")
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.platform_hooks: PlatformHooks | None = None  # a test's own Talos and Kubernetes
        self.gitops_hooks: GitopsHooks | None = None
        self.on_event: Callable[[str, dict[str, Any]], None] | None = None  # reacts to an event as it is emitted

    def _emit(self, kind: str, **fields: Any) -> None:
        self.events.append((kind, fields))
        if self.on_event is not None:
            self.on_event(kind, fields)

    def runner(self, steps: list) -> Runner:
        return Runner(steps, spec=self.spec, workspace=self.ws, target="sandbox", connections=self.conns,
                      secrets=self.secrets, state=self.state, emit=self._emit)

    async def run(self, steps: list, only: str | None = None) -> Any:
        try:
            return await self.runner(steps).run(Selection(only=only))
        finally:
            await close_all(self.conns)

    def forget(self) -> None:
        """Drop the engine's memory, so every step runs again (the idempotency check)."""
        self.state.close()
        for f in self.ws.state_dir.iterdir():
            f.unlink()
        self.state = StateStore.open(self.ws.state_dir, "sandbox")

    def stop(self) -> None:
        self.state.close()
        self.hosts.stop()
        self.pve.stop()
        self.factory.stop()


@pytest.fixture
def make_sandbox(tmp_path: Path):
    made: list[Sandbox] = []

    def make(spec_data: dict[str, Any], **kwargs: Any) -> Sandbox:
        box = Sandbox(tmp_path / f"ws{len(made)}", Platform.model_validate(spec_data), **kwargs)
        made.append(box)
        return box

    yield make
    for box in made:
        box.stop()
