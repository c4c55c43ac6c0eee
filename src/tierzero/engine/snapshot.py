"""The workspace state of a deploy as the diagram draws it: the step graph with each step's last
measured duration (tierzero.render.diagram.DeploySnapshot)."""

from __future__ import annotations

from collections.abc import Mapping

from tierzero.engine.dag import Graph
from tierzero.engine.state import RunRecord, StepRecord
from tierzero.render.diagram.schedule import DeploySnapshot, StepTime


def deploy_snapshot(graph: Graph, records: Mapping[str, StepRecord], *, target: str, last_run: RunRecord | None) -> DeploySnapshot:
    """Every step of `graph` in its order; a step's seconds are its recorded duration when it
    finished (done, or failed after it had run), else None (never run, or killed while running)."""
    steps = []
    for sid in graph.order:
        rec = records.get(sid)
        seconds = rec.duration if rec is not None and rec.status in ("done", "failed") and rec.duration is not None else None
        steps.append(StepTime(sid, graph.phase_of(sid), graph.after.get(sid, ()), rec.status if rec is not None else "not run", seconds))
    run = f"{last_run.command} {last_run.status}" if last_run is not None else None
    return DeploySnapshot(target=target, steps=tuple(steps), last_run=run)
