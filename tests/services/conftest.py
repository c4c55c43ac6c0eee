"""Fixtures for the services phase: a spec, an in-memory secret store, a fake Proxmox host shell
(pct exec into a container with or without Docker), the Infisical stand-in and a tiny step runner."""

from __future__ import annotations

import logging
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tierzero.adapters.connections import Connections
from tierzero.engine.step import Step, StepContext
from tierzero.phases import services as phase
from tierzero.phases import services_lxc
from tierzero.errors import OperationError
from memory_secrets import MemorySecrets
from tierzero.sandbox.infisical import ContainerStandIn, InfisicalStandIn
from tierzero.spec import Platform
from tierzero.workspace.keys import create_ssh_keypair
from tierzero.workspace.layout import Workspace
from spec_builder import build_spec



@dataclass
class Ran:
    command: str
    input: str | None
    secrets: tuple[str, ...]


@dataclass
class FakeHostShell:
    """A Proxmox node's SSH client whose `pct exec` runs in the sandbox's ContainerStandIn."""

    containers: ContainerStandIn = field(default_factory=ContainerStandIn)
    ran: list[Ran] = field(default_factory=list)
    log: Any = None
    on_retry: Any = None
    target: Any = field(default_factory=lambda: SimpleNamespace(user="root"))
    on_set: Any = None  # `pct set VMID --key value`: what root on the node changes (the test's Proxmox)

    @property
    def files(self) -> dict[str, tuple[str, str]]:
        return {path: v for (_, path), v in self.containers.files.items()}

    async def run(self, command: str, *, check: bool = True, input: str | None = None, secrets: Any = (),
                  timeout: float | None = 600, hint: str | None = None, **hooks: Any) -> Any:
        argv = shlex.split(command) if isinstance(command, str) else list(command)
        command = shlex.join(argv)
        self.ran.append(Ran(command, input, tuple(secrets)))
        assert argv[0] == "pct", command
        if argv[1] == "set":
            if self.on_set is not None:
                self.on_set(argv)
            return type("Result", (), {"exit_status": 0, "ok": True, "stdout": "", "stderr": ""})()
        rc, out, err = self.containers.pct(argv[1:], input or "")
        if check and rc:
            raise OperationError(f"`pct exec` exited {rc}: {err.strip()}")
        return type("Result", (), {"exit_status": rc, "ok": rc == 0, "stdout": out, "stderr": err})()


@pytest.fixture
def spec() -> Platform:
    return build_spec("proxmox")


@pytest.fixture
def memory_secrets() -> MemorySecrets:
    return MemorySecrets()


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    ws = Workspace(tmp_path / ".tierzero")
    ws.root.mkdir()
    create_ssh_keypair(ws)  # a real pair: a public key without its private key is refused (workspace/keys.py)
    return ws


@pytest.fixture
def standin() -> Any:
    with InfisicalStandIn() as server:
        yield server


@pytest.fixture(autouse=True)
def fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(phase, "POLL_INTERVAL", 0.01)
    monkeypatch.setattr(phase, "READY_TIMEOUT", 5.0)
    monkeypatch.setattr(services_lxc, "POLL_INTERVAL", 0.01)


@dataclass
class Harness:
    spec: Platform
    workspace: Workspace
    connections: Connections
    secrets: MemorySecrets
    shell: FakeHostShell
    outputs: dict[str, Any] = field(default_factory=dict)
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def ctx(self, step: Step) -> StepContext:
        return StepContext(spec=self.spec, workspace=self.workspace, target="sandbox", connections=self.connections,
                           secrets=self.secrets, outputs=self.outputs, step_id=step.id,
                           emit=lambda kind, **f: self.events.append((kind, f)))

    async def run(self, step: Step) -> Any:
        from tierzero.adapters import calls

        ctx = self.ctx(step)
        with calls.receiving(lambda **f: self.events.append(("call", {"step": step.id, **f}))):  # as the runner does
            out = await step.run(ctx, step.inputs(ctx))
        self.outputs[step.id] = dict(out)
        return out

    async def run_all(self, steps: list[Step]) -> None:
        for step in steps:
            await self.run(step)


@pytest.fixture
def harness(spec: Platform, workspace: Workspace, standin: InfisicalStandIn, monkeypatch: pytest.MonkeyPatch) -> Harness:
    shell = FakeHostShell()
    monkeypatch.setattr(phase, "host_ssh", lambda ctx, node: shell)  # the node's SSH client
    monkeypatch.setattr(services_lxc, "host_ssh", lambda ctx, node: shell)
    conns = Connections(target="sandbox")
    conns.add("infisical", spec.infisical_services()[0].name, standin.endpoint())
    standin.source_ip = "192.168.10.5"  # as if tierzero ran on the node network the identity trusts
    return Harness(spec, workspace, conns, MemorySecrets(), shell)


@pytest.fixture
def capture_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog
