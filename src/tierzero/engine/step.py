"""What a deployment is made of: steps, each in a phase, with inputs, outputs and dependencies.

A step's `run` is an async function of its context. It must be idempotent: look up before
creating, adopt what exists, and never regenerate a secret (use `ctx.secrets`). The engine
fingerprints `inputs(ctx)`; an unchanged fingerprint with a finished status means skip.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Literal, Mapping, Protocol

if TYPE_CHECKING:
    from tierzero.adapters.connections import Connections
    from tierzero.spec import Platform
    from tierzero.workspace import Workspace

Phase = Literal["setup", "cloud", "hypervisors", "platform", "gitops", "services", "validate"]
PHASES: tuple[Phase, ...] = ("setup", "cloud", "hypervisors", "platform", "gitops", "services", "validate")
Target = Literal["real", "sandbox"]


class SecretStore(Protocol):
    """Generated secrets, created once, kept SOPS-encrypted in the workspace, reused forever."""

    def get_or_create(self, name: str, generate: Callable[[], str]) -> str: ...

    def get(self, name: str) -> str | None: ...

    def put(self, name: str, value: str) -> None: ...

    def resolve(self, ref: str) -> str:
        """Resolve a spec reference: env:NAME, file:PATH or sops:PATH#key."""
        ...


class EventSink(Protocol):
    def __call__(self, kind: str, **fields: Any) -> None: ...


@dataclass
class StepContext:
    """Everything a step may use. `connections` is the only door to the outside world."""

    spec: "Platform"
    workspace: "Workspace"
    target: Target
    connections: "Connections"
    secrets: SecretStore
    outputs: Mapping[str, Mapping[str, Any]]  # outputs of finished steps, by step id
    step_id: str = ""
    emit: EventSink = field(default=lambda kind, **f: None)
    previous: Mapping[str, Any] | None = None  # this step's outputs from its last finished run (even if a later one died)

    def output(self, step_id: str) -> Mapping[str, Any]:
        return self.outputs[step_id]

    def log(self, message: str, **fields: Any) -> None:
        self.emit("log", step=self.step_id, message=message, **fields)

    def wait(self, what: str, **fields: Any) -> None:
        self.emit("wait", step=self.step_id, message=what, **fields)

    def retry(self, attempt: int, cause: str, delay: float) -> None:
        self.emit("retry", step=self.step_id, attempt=attempt, cause=cause, delay=delay)


StepRun = Callable[[StepContext], Awaitable[Mapping[str, Any]]]


@dataclass(frozen=True)
class Step:
    id: str  # unique, like "hypervisors/pvecm-add/pve2"
    phase: Phase
    description: str
    run: StepRun
    inputs: Callable[[StepContext], Any] = lambda ctx: None  # JSON-able; fingerprinted
    needs: tuple[str, ...] = ()  # ids of steps whose outputs this one reads
    destroy: StepRun | None = None  # undo, run in reverse order by `tierzero destroy`
    real_only: bool = False  # changes real infrastructure: needs confirmation
    always: bool = False  # runs on every deploy (checks of the world as it is now), never skipped
