"""The step graph: validation (unique ids, known needs, no cycles), a stable topological
order, selections by phase, and the critical path for given durations.

Besides a step's explicit `needs`, phases are barriers: a step starts only after every step
of the earlier phases. Inside a phase, only `needs` order the steps, so branches run in
parallel."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tierzero.engine.step import PHASES, Step
from tierzero.errors import InputError


class DagError(InputError):
    """The step graph is malformed: a programming error in a phase module."""


@dataclass
class Graph:
    steps: dict[str, Step[Any]]
    order: list[str]  # topological, stable: phase order, then the order the phases listed them
    after: dict[str, tuple[str, ...]] = field(default_factory=dict)  # needs + phase barrier
    explicit: dict[str, tuple[str, ...]] = field(default_factory=dict)  # `needs` only

    def phase_of(self, step_id: str) -> str:
        return self.steps[step_id].phase

    def downstream(self, roots: Iterable[str]) -> set[str]:
        """Steps that (transitively) read the outputs of any root, through explicit needs."""
        readers: dict[str, list[str]] = {sid: [] for sid in self.steps}
        for sid, needs in self.explicit.items():
            for need in needs:
                readers[need].append(sid)
        seen: set[str] = set()
        todo = list(roots)
        while todo:
            for reader in readers[todo.pop()]:
                if reader not in seen:
                    seen.add(reader)
                    todo.append(reader)
        return seen

    def select(self, only: str | None = None, start: str | None = None, until: str | None = None) -> list[str]:
        """Step ids of the chosen phases, in order."""
        for name, value in (("--only", only), ("--from", start), ("--until", until)):
            if value is not None and value not in PHASES:
                raise InputError(f"{name}: unknown phase {value!r}", hint=f"phases: {', '.join(PHASES)}")
        if only and (start or until):
            raise InputError("--only cannot be combined with --from/--until")
        lo = PHASES.index(start) if start else 0
        hi = PHASES.index(until) if until else len(PHASES) - 1
        if only:
            lo = hi = PHASES.index(only)
        if lo > hi:
            raise InputError(f"--from {start} comes after --until {until}", hint=f"phase order: {', '.join(PHASES)}")
        wanted = set(PHASES[lo : hi + 1])
        return [sid for sid in self.order if self.steps[sid].phase in wanted]

    def critical_path(self, durations: Mapping[str, float]) -> tuple[float, list[str]]:
        """Longest chain of (duration-weighted) steps through `after` edges."""
        finish: dict[str, float] = {}
        best_pred: dict[str, str | None] = {}
        for sid in self.order:
            pred = max(self.after[sid], key=lambda p: finish[p], default=None)
            start = finish[pred] if pred else 0.0
            finish[sid] = start + durations.get(sid, 0.0)
            best_pred[sid] = pred
        if not finish:
            return 0.0, []
        end = max(finish, key=lambda s: finish[s])
        path: list[str] = []
        node: str | None = end
        while node is not None:
            path.append(node)
            node = best_pred[node]
        return finish[end], path[::-1]


def build(steps: Sequence[Step[Any]], *, barriers: bool = True) -> Graph:
    by_id: dict[str, Step[Any]] = {}
    for step in steps:
        if step.id in by_id:
            raise DagError(f"two steps share the id {step.id!r}", hint="step ids must be unique across all phases")
        if step.phase not in PHASES:
            raise DagError(f"step {step.id!r} has unknown phase {step.phase!r}", hint=f"phases: {', '.join(PHASES)}")
        by_id[step.id] = step
    for step in steps:
        for need in step.needs:
            if need not in by_id:
                raise DagError(f"step {step.id!r} needs {need!r}, which no phase defines")
            if PHASES.index(by_id[need].phase) > PHASES.index(step.phase):
                raise DagError(f"step {step.id!r} ({step.phase}) needs {need!r} from the later phase {by_id[need].phase}")
    explicit = {s.id: tuple(dict.fromkeys(s.needs)) for s in steps}
    after = {sid: list(needs) for sid, needs in explicit.items()}
    if barriers:
        _add_barriers(steps, after)
    order = _toposort(steps, after)
    return Graph(by_id, order, {k: tuple(v) for k, v in after.items()}, explicit)


def _add_barriers(steps: Sequence[Step[Any]], after: dict[str, list[str]]) -> None:
    """Each step of a phase waits for the last steps (sinks) of the previous non-empty phase;
    sinks of a phase transitively cover the whole phase, so this is one barrier per phase."""
    by_phase: dict[str, list[Step[Any]]] = {p: [] for p in PHASES}
    for step in steps:
        by_phase[step.phase].append(step)
    previous_sinks: list[str] = []
    for phase in PHASES:
        members = by_phase[phase]
        if not members:
            continue
        ids = {s.id for s in members}
        for step in members:
            if not any(n in ids for n in step.needs):  # a phase entry point
                after[step.id].extend(s for s in previous_sinks if s not in after[step.id])
        needed_inside = {n for s in members for n in s.needs if n in ids}
        previous_sinks = [s.id for s in members if s.id not in needed_inside]


def _toposort(steps: Sequence[Step[Any]], after: Mapping[str, Sequence[str]]) -> list[str]:
    position = {s.id: i for i, s in enumerate(steps)}
    phase_rank = {s.id: PHASES.index(s.phase) for s in steps}
    indegree = {s.id: len(after[s.id]) for s in steps}
    readers: dict[str, list[str]] = {s.id: [] for s in steps}
    for sid, needs in after.items():
        for need in needs:
            readers[need].append(sid)
    import heapq

    ready = [(phase_rank[s], position[s], s) for s, d in indegree.items() if d == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        _, _, sid = heapq.heappop(ready)
        order.append(sid)
        for reader in readers[sid]:
            indegree[reader] -= 1
            if indegree[reader] == 0:
                heapq.heappush(ready, (phase_rank[reader], position[reader], reader))
    if len(order) != len(steps):
        cycle = _find_cycle({s for s, d in indegree.items() if d > 0}, after)
        raise DagError("the steps form a cycle (each must run before the next): " + " -> ".join(cycle), hint="remove one of these `needs`")
    return order


def _find_cycle(nodes: set[str], after: Mapping[str, Sequence[str]]) -> list[str]:
    start = min(nodes)
    path: list[str] = []
    index: dict[str, int] = {}
    node = start
    while node not in index:  # every remaining node has an unresolved need inside `nodes`
        index[node] = len(path)
        path.append(node)
        node = next(n for n in after[node] if n in nodes)
    cycle = path[index[node] :] + [node]
    return cycle[::-1]  # read as "a needs b needs ... " reversed into execution direction
