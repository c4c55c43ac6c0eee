"""All steps of a spec, from every phase module present.

Phase-module contract: `tierzero.phases.<phase>` defines `steps(spec: Platform) -> list[Step]`
- every step has `phase == "<phase>"` and an id starting with "<phase>/", unique overall;
- `needs` name steps of the same or earlier phases whose outputs it reads; phases are also
  barriers (a phase starts when the previous one finished), so cross-phase needs are optional;
- `inputs(ctx)` returns JSON-able data covering everything the step's effect depends on
  (spec parts and the upstream outputs it reads): unchanged inputs + done = skipped;
- `run` is idempotent (look up, adopt, then create) and returns JSON-able outputs, never
  secrets (those go to `ctx.secrets`); a step may publish endpoints it learned as
  outputs["endpoints"] = [{"kind", "name", "host", "port", "scheme"?, "verify"?, "extra"?}];
- `real_only=True` marks steps that change real infrastructure (deploy asks first);
  `destroy` undoes the step (run in reverse order by `tierzero destroy`);
- retries go through `tierzero.adapters.retry` with `on_retry=ctx.retry`; waits are
  announced with `ctx.wait(...)`; a permanent failure raises a `tierzero.errors` type with
  a hint (the remedy shown to the user).
A module that is absent contributes nothing (while the project grows)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tierzero.engine.step import PHASES, Step

if TYPE_CHECKING:
    from tierzero.spec.models import Platform

PHASE_MODULES: dict[str, str] = {phase: f"tierzero.phases.{phase}" for phase in PHASES}


def phase_module(phase: str) -> Any | None:
    name = PHASE_MODULES[phase]
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name == name:
            return None
        raise


def all_steps(spec: Platform) -> list[Step]:
    out: list[Step] = []
    for phase in PHASES:
        module = phase_module(phase)
        if module is None:
            continue
        out.extend(module.steps(spec))
    return out
