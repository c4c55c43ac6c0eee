"""Validation: the reference design's checks, each a row (pass / fail / skip + evidence).

Reads live systems through the adapters (OCI, Kubernetes, Flux) and the outputs of earlier
steps for what only they can see:
- `hypervisors/summary`: {"quorate": bool, "members": [...], "ceph_health": "HEALTH_OK"|None}
- `platform/...` step outputs holding "etcd_members" (list), and "talos_nodes" (list) or, from
  the step `platform/<cluster>/talos`, "nodes" (list)
The step runs on every deploy (`Step.always`) and fails when any row fails."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tierzero.engine.step import Step, StepContext
from tierzero.errors import OperationError


@dataclass(frozen=True)
class Row:
    check: str
    status: str  # pass, fail, skip
    evidence: str

    def as_dict(self) -> dict[str, str]:
        return {"check": self.check, "status": self.status, "evidence": self.evidence}


def _row(check: str, ok: bool, evidence: str) -> Row:
    return Row(check, "pass" if ok else "fail", evidence)


def _compartment(ctx: StepContext) -> str:
    oci = ctx.spec.oci
    if oci.compartment_ocid:
        return oci.compartment_ocid
    for sid, out in ctx.outputs.items():
        if sid.startswith("cloud/"):
            for key in ("compartment_ocid", "compartment_id"):
                if isinstance(out.get(key), str):
                    return out[key]
    return oci.tenancy_ocid


def free_tier_problems(instances: list[Any], on: dt.date | None = None) -> list[str]:
    """Why these live instances would leave Always Free, judged by the dated limits and prices in
    force on `on` (today by default): the same assessment `tierzero check` makes of a spec."""
    from tierzero.freetier.cost import assess
    from tierzero.freetier.usage import Instance, Usage

    live = [i for i in instances if i.state not in ("TERMINATED", "TERMINATING")]
    usage = Usage(instances=[Instance(i.name, i.shape, i.ocpus, i.memory_gb) for i in live])
    return [f.line() for f in assess(usage, on=on).violations]


def check_oci(ctx: StepContext) -> list[Row]:
    if ctx.spec.oci is None:
        return [Row("OCI instances", "skip", "no cloud in the spec (own hosts)"), Row("cost this month", "skip", "no cloud in the spec")]
    from tierzero.adapters.oci import Oci

    client = Oci.connect(ctx.connections, ctx.spec)
    instances = client.instances(_compartment(ctx))
    by_name = {i.name: i for i in instances}
    wanted = ctx.spec.oci.instance_names()
    missing = [n for n in wanted if n not in by_name]
    stopped = [f"{n} {by_name[n].state}" for n in wanted if n in by_name and by_name[n].state != "RUNNING"]
    rows = [_row("OCI instances running", not missing and not stopped,
                 "; ".join([*(f"{n} missing" for n in missing), *stopped]) or ", ".join(f"{n} RUNNING" for n in wanted))]
    problems = free_tier_problems([i for i in instances if i.name in wanted])
    a1 = [i for i in instances if i.name in wanted and i.shape == "VM.Standard.A1.Flex"]
    rows.append(_row("OCI within Always Free", not problems, "; ".join(problems) or
                     f"A1 {sum(i.ocpus for i in a1):g} OCPU / {sum(i.memory_gb for i in a1):g} GB, "
                     f"{sum(1 for i in instances if i.name in wanted and i.shape == 'VM.Standard.E2.1.Micro')} micro"))
    cost, currency = client.cost_this_month()
    rows.append(_row("cost this month", cost == 0.0, f"{cost:.2f} {currency}"))
    return rows


def check_proxmox(ctx: StepContext) -> list[Row]:
    summary = ctx.outputs.get("hypervisors/summary")
    if summary is None:
        return [Row("Proxmox quorum", "skip", "the hypervisors phase has not reported (hypervisors/summary)")]
    members = summary.get("members", [])
    rows = [_row("Proxmox quorum", bool(summary.get("quorate")), f"quorate={summary.get('quorate')}, members: {', '.join(map(str, members)) or 'none'}")]
    if ctx.spec.proxmox.ceph.enabled:
        health = summary.get("ceph_health")
        rows.append(_row("Ceph health", health == "HEALTH_OK", str(health) + "".join(f"; {r}" for r in summary.get("ceph_reasons", []))))
    else:
        rows.append(Row("Ceph health", "skip", "Ceph is disabled in the spec"))
    return rows


def _platform_lists(ctx: StepContext, key: str, *, talos_step_key: str | None = None) -> list[Any] | None:
    found: list[Any] | None = None
    for sid, out in ctx.outputs.items():
        if not sid.startswith("platform/"):
            continue
        if isinstance(out.get(key), list):
            found = (found or []) + list(out[key])
        elif talos_step_key and sid.endswith("/talos") and isinstance(out.get(talos_step_key), list):
            found = (found or []) + list(out[talos_step_key])
    return found


def check_talos(ctx: StepContext) -> list[Row]:
    rows = []
    expected = sorted(n.name for c in ctx.spec.clusters for _, n in c.nodes())
    nodes = _platform_lists(ctx, "talos_nodes", talos_step_key="nodes")
    if nodes is None:
        rows.append(Row("Talos nodes", "skip", "no platform step reported talos_nodes"))
    else:
        names = sorted(str(n.get("name", n)) if isinstance(n, Mapping) else str(n) for n in nodes)
        rows.append(_row("Talos nodes", set(expected) <= set(names), f"{len(names)}/{len(expected)}: {', '.join(names)}"))
    members = _platform_lists(ctx, "etcd_members")
    cps = sum(len(c.control_planes) for c in ctx.spec.clusters)
    if members is None:
        rows.append(Row("etcd members", "skip", "no platform step reported etcd_members"))
    else:
        rows.append(_row("etcd members", len(members) == cps, f"{len(members)} members, {cps} control planes"))
    return rows


def check_kubernetes(ctx: StepContext) -> list[Row]:
    from tierzero.adapters.kubernetes import Kube

    rows = []
    for cluster in ctx.spec.clusters:
        kube = Kube.connect(ctx.connections, cluster.name)
        nodes = kube.nodes()
        want = {n.name for _, n in cluster.nodes()}
        ready = {n.name for n in nodes if n.ready}
        rows.append(_row(f"{cluster.name}: Kubernetes nodes Ready", want <= ready,
                         f"{len(ready & want)}/{len(want)} Ready" + (f"; not Ready: {', '.join(sorted(want - ready))}" if want - ready else "")))
        if cluster.gitops is None:
            rows.append(Row(f"{cluster.name}: Flux reconciled", "skip", "no gitops in the spec"))
            continue
        if cluster.gitops.engine == "argocd":
            apps = kube.list("argoproj.io/v1alpha1", "Application", "argocd")
            bad = [a["metadata"]["name"] for a in apps if a.get("status", {}).get("health", {}).get("status") != "Healthy"
                   or a.get("status", {}).get("sync", {}).get("status") != "Synced"]
            rows.append(_row(f"{cluster.name}: Argo CD synced", bool(apps) and not bad,
                             f"{len(apps) - len(bad)}/{len(apps)} Synced and Healthy" + (f"; not yet: {', '.join(bad)}" if bad else "")))
            continue
        objects = kube.list("kustomize.toolkit.fluxcd.io/v1", "Kustomization", "flux-system") + \
            kube.list("helm.toolkit.fluxcd.io/v2", "HelmRelease", None)
        pending = [f"{o['kind']} {o['metadata'].get('namespace')}/{o['metadata']['name']}" for o in objects if not _ready(o)]
        rows.append(_row(f"{cluster.name}: Flux reconciled", bool(objects) and not pending,
                         f"{len(objects) - len(pending)}/{len(objects)} Ready" + (f"; waiting: {', '.join(pending)}" if pending else "")))
    return rows


def _ready(obj: Mapping[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in obj.get("status", {}).get("conditions", []))


CHECKS: tuple[Callable[[StepContext], list[Row]], ...] = (check_oci, check_proxmox, check_talos, check_kubernetes)


async def run_checks(ctx: StepContext) -> list[Row]:
    async def one(check: Callable[[StepContext], list[Row]]) -> list[Row]:
        name = check.__name__.removeprefix("check_")
        try:
            return await asyncio.to_thread(check, ctx)
        except Exception as exc:  # noqa: BLE001 - a broken check is a failed row, not a crash
            return [Row(name, "fail", f"{type(exc).__name__}: {exc}")]

    results = await asyncio.gather(*(one(c) for c in CHECKS))
    return [row for rows in results for row in rows]


async def _validate(ctx: StepContext) -> Mapping[str, Any]:
    rows = await run_checks(ctx)
    failed = [r for r in rows if r.status == "fail"]
    for row in rows:
        ctx.log(f"{row.status:4} {row.check}: {row.evidence}")
    if failed:
        raise OperationError("validation failed: " + "; ".join(f"{r.check} ({r.evidence})" for r in failed),
                             hint="fix the failing parts, then run `tierzero validate` (or deploy again)")
    return {"rows": [r.as_dict() for r in rows]}


def steps(spec: Any) -> list[Step]:
    return [Step("validate/checks", "validate", "check the platform end to end", _validate, always=True)]
