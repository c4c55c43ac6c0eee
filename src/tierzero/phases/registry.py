"""All steps of a spec, from every phase module present.

Phase-module contract: `tierzero.phases.<phase>` defines `steps(spec: Platform) -> list[Step]`
whose steps all have `phase == "<phase>"` and ids starting with "<phase>/". Steps may
`need` steps of the same or earlier phases; the engine also orders phases as barriers.
A module that is absent contributes nothing (while the project grows)."""

from __future__ import annotations

import importlib
from typing import Any

from tierzero.engine.step import PHASES, Step

PHASE_MODULES: dict[str, str] = {phase: f"tierzero.phases.{phase}" for phase in PHASES}


def phase_module(phase: str) -> Any | None:
    name = PHASE_MODULES[phase]
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name == name:
            return None
        raise


def present_phases() -> list[str]:
    return [p for p in PHASES if phase_module(p) is not None]


def all_steps(spec: Any) -> list[Step]:
    out: list[Step] = []
    for phase in PHASES:
        module = phase_module(phase)
        if module is None:
            continue
        out.extend(module.steps(spec))
    return out
