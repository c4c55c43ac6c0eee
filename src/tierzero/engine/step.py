"""What a deployment is made of: steps, each in a phase, with inputs, outputs and dependencies.

A step is one typed declaration: `inputs(ctx)` builds a frozen value (a frozen dataclass, a
tuple, a string...) from the spec and the upstream outputs the step depends on; the engine
fingerprints that value and hands the same value to `run(ctx, inputs)`, so what the step acts
on is what was fingerprinted: an unchanged fingerprint with a finished status means skip.
`run` must be idempotent: look up before creating, adopt what exists, and never regenerate a
secret (use `ctx.secrets`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Generic, Literal, Mapping, Protocol, TypeVar

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
        """Announce a wait; `what` completes "waiting for ...", like "quorum of tierzero"."""
        self.emit("wait", step=self.step_id, message=what, **fields)

    def retry(self, attempt: int, cause: str, delay: float) -> None:
        self.emit("retry", step=self.step_id, attempt=attempt, cause=cause, delay=delay)


InputsT = TypeVar("InputsT")  # a step's inputs value
Outputs = Mapping[str, Any]
StepRun = Callable[[StepContext, InputsT], Awaitable[Outputs]]
StepUndo = Callable[[StepContext], Awaitable[Outputs]]


def no_inputs(ctx: StepContext) -> None:
    return None


def frozen(value: Any) -> Any:
    """`value` with its dicts read-only (MappingProxyType) and its lists and sets tuples, all the
    way down: what `run` receives when `inputs` returned plain JSON-like data."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: frozen(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(frozen(v) for v in value)
    if isinstance(value, (set, frozenset)):
        return frozenset(frozen(v) for v in value)
    return value


@dataclass(frozen=True)
class Step(Generic[InputsT]):
    id: str  # unique, like "hypervisors/pvecm-add/pve2"
    phase: Phase
    description: str
    run: Callable[[StepContext, InputsT], Awaitable[Outputs]]
    # A frozen value of everything the step's effect depends on (JSON-able once dataclasses and
    # spec models are dumped: see tierzero.engine.state.fingerprint); `run` receives it.
    inputs: Callable[[StepContext], InputsT] = no_inputs  # type: ignore[assignment]
    needs: tuple[str, ...] = ()  # ids of steps whose outputs this one reads
    destroy: StepUndo | None = None  # undo, run in reverse order by `tierzero destroy`
    real_only: bool = False  # changes real infrastructure: needs confirmation
    always: bool = False  # runs on every deploy (checks of the world as it is now), never skipped
