"""The deploy DAG with measured step times, laid out as a full deploy would run it.

A step's time is its last measured run (the workspace state keeps, per step, the duration of
the run that last executed it; a later run that skipped it leaves that record). Steps from
several runs (a resumed deploy, a change that re-ran a few steps) are therefore placed by the
graph, not by their wall-clock start: each starts when the last step it waits for (its `needs`
and the phase barrier) finishes. That is the schedule of an unconstrained full deploy with the
measured times, and its longest chain is the critical path. Pure: a snapshot in, a schedule out."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StepTime:
    """One step of the DAG as the state records it.

    `after`: the steps it waits for (needs plus the phase barrier), all earlier in the snapshot;
    `status`: done, failed, running, pending or "not run"; `seconds`: the measured duration, None if never measured."""

    id: str
    phase: str
    after: tuple[str, ...]
    status: str
    seconds: float | None


@dataclass(frozen=True)
class DeploySnapshot:
    """What the workspace state says about the deploy: the target, every step in topological order, the last run's status."""

    target: str
    steps: tuple[StepTime, ...]
    last_run: str | None = None  # like "deploy done", None before the first run
    # What deploys learned, by instance name: lines like "10.0.1.23 / 141.147.1.2 (public)", "AD-2" (the cloud step's outputs)
    placed: tuple[tuple[str, tuple[str, ...]], ...] = ()
    load_balancers: tuple[tuple[str, str], ...] = ()  # (cluster, public address of its network load balancer)

    @property
    def measured(self) -> tuple[StepTime, ...]:
        return tuple(s for s in self.steps if s.seconds is not None)


@dataclass(frozen=True)
class Slot:
    step: StepTime
    start: float  # seconds from the start of the deploy
    end: float
    critical: bool


def schedule(snapshot: DeploySnapshot) -> tuple[list[Slot], float]:
    """Every measured step with its start and end (seconds), and the makespan. A step never
    measured takes no time but still passes on its predecessors' finish. ValueError when a
    step waits for one that is not earlier in the snapshot (the snapshot is not topological)."""
    finish: dict[str, float] = {}
    start_of: dict[str, float] = {}
    via: dict[str, str | None] = {}
    for step in snapshot.steps:
        missing = [a for a in step.after if a not in finish]
        if missing:
            raise ValueError(f"step {step.id} waits for {missing[0]}, which is not before it in the snapshot")
        pred = max(step.after, key=lambda a: finish[a], default=None)
        start_of[step.id] = finish[pred] if pred is not None else 0.0
        finish[step.id] = start_of[step.id] + (step.seconds or 0.0)
        via[step.id] = pred
    critical: set[str] = set()
    makespan = max(finish.values(), default=0.0)
    node = max(finish, key=lambda s: finish[s], default=None)
    while node is not None:
        critical.add(node)
        node = via[node]
    slots = [Slot(s, start_of[s.id], finish[s.id], s.id in critical) for s in snapshot.steps if s.seconds is not None]
    return slots, makespan
