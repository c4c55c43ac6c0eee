"""The workspace state of a deploy as the diagram draws it: the step graph with each step's last
measured duration (tierzero.render.diagram.DeploySnapshot)."""

from __future__ import annotations

from collections.abc import Mapping

from tierzero.engine.dag import Graph
from tierzero.engine.state import RunRecord, StepRecord
from tierzero.render.diagram.schedule import DeploySnapshot, StepTime

CLOUD_STEP = "cloud/oci"  # tierzero.phases.cloud: its outputs say where each instance landed


def deploy_snapshot(graph: Graph, records: Mapping[str, StepRecord], *, target: str, last_run: RunRecord | None) -> DeploySnapshot:
    """Every step of `graph` in its order; a step's seconds are its recorded duration when it
    finished (done, or failed after it had run), else None (never run, or killed while running).
    With the cloud step done: each instance's addresses and availability domain, each cluster's load balancer address."""
    steps = []
    for sid in graph.order:
        rec = records.get(sid)
        seconds = rec.duration if rec is not None and rec.status in ("done", "failed") and rec.duration is not None else None
        steps.append(StepTime(sid, graph.phase_of(sid), graph.after.get(sid, ()), rec.status if rec is not None else "not run", seconds))
    run = f"{last_run.command} {last_run.status}" if last_run is not None else None
    cloud = records.get(CLOUD_STEP)
    outputs = cloud.outputs if cloud is not None and cloud.status == "done" else {}
    placed = []
    for name, inst in sorted((outputs.get("instances") or {}).items()):
        lines = [" / ".join([*([str(inst["private_ip"])] if inst.get("private_ip") else []),
                             *([f"{inst['public_ip']} (public)"] if inst.get("public_ip") else [])])]
        if inst.get("availability_domain"):
            lines.append(str(inst["availability_domain"]))
        placed.append((str(name), tuple(line for line in lines if line)))
    balancers = tuple(sorted((str(c), str(ip)) for c, ip in (outputs.get("network_load_balancers") or {}).items()))
    return DeploySnapshot(target=target, steps=tuple(steps), last_run=run, placed=tuple(placed), load_balancers=balancers)
