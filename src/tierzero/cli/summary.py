"""Summaries: the one `check` prints (clusters, nodes, hosts, resources, then the free-tier fit),
and the lines that end a deploy or destroy (`run_summary`, `summary_fields` for --json)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tierzero.spec import LoadedSpec


def spec_summary(loaded: LoadedSpec) -> dict[str, Any]:
    p = loaded.platform
    vm_mem: dict[str, float] = defaultdict(float)
    vm_count: dict[str, int] = defaultdict(int)
    for c in p.clusters:
        for _, n in c.nodes():
            if n.node is not None:
                vm_mem[n.node] += n.memory_gb
                vm_count[n.node] += 1
    for s in p.services:
        vm_mem[s.node] += s.memory_gb
        vm_count[s.node] += 1
    hosts = []
    for host in (p.proxmox.nodes if p.has_proxmox else []):
        hosts.append({
            "name": host.name,
            "source": f"oci:{host.instance}" if host.instance else host.address,
            "cores": p.host_cores(host),
            "memory_gb": p.host_memory_gb(host),
            "reserve_gb": host.memory_reserve_gb,
            "guests": vm_count[host.name],
            "guest_memory_gb": vm_mem[host.name],
        })
    clusters = [{
        "name": c.name,
        "talos": c.talos_version,
        "kubernetes": c.kubernetes_semver,
        "endpoint": c.endpoint,
        "control_planes": len(c.control_planes),
        "workers": len(c.workers),
        "cni": c.cni,
        "gitops": c.gitops.engine if c.gitops else None,
        "addons": list(c.addons.enabled()),
        "load_balancers": _load_balancer_line(c),
    } for c in p.clusters]
    cloud = None
    if p.oci:
        cloud = {
            "region": p.oci.region,
            "a1": [{"name": i.name, "ocpus": i.ocpus, "memory_gb": i.memory_gb, "boot_volume_gb": i.boot_volume_gb} for i in p.oci.a1_instances],
            "micro": [{"name": i.name, "roles": i.roles} for i in p.oci.micro_instances],
        }
    return {
        "name": p.metadata.name,
        "cloud": cloud,
        "proxmox": {"cluster": p.proxmox.cluster_name, "hosts": hosts, "ceph": p.proxmox.ceph.enabled} if p.has_proxmox else None,
        "talos_instances": [{"node": n.name, "cluster": c.name, "instance": i.name, "role": c.node_and_role(n.name)[0],
                             "ip": str(n.ip.address) if n.ip.address else None} for c, n, i in p.talos_instances()],
        "clusters": clusters,
        "services": [{"name": s.name, "kind": s.kind, "node": s.node, "vmid": s.vmid} for s in p.services],
    }


def _load_balancer_line(cluster: Any) -> str | None:
    """What tierzero does about Talos' exclude-from-external-load-balancers label for this cluster."""
    from tierzero.render.load_balancers import exclude_label_decision

    return exclude_label_decision(cluster).describe()


def print_summary(con, loaded: LoadedSpec) -> None:
    from rich.table import Table

    data = spec_summary(loaded)
    con.print(f"{loaded.path}: valid spec for platform {data['name']!r}", markup=False)
    for w in loaded.warnings:
        con.print(f"warning: {w.render(str(loaded.path))}", markup=False)
    if data["cloud"]:
        t = Table(title=f"OCI ({data['cloud']['region']})", title_justify="left")
        for col in ("instance", "shape", "OCPU", "GB", "boot GB"):
            t.add_column(col)
        for i in data["cloud"]["a1"]:
            t.add_row(i["name"], "VM.Standard.A1.Flex", str(i["ocpus"]), str(i["memory_gb"]), str(i["boot_volume_gb"]))
        for i in data["cloud"]["micro"]:
            t.add_row(f"{i['name']} ({', '.join(i['roles'])})", "VM.Standard.E2.1.Micro", "1/8", "1", "50")
        con.print(t)
    if data["proxmox"]:
        t = Table(title=f"Proxmox VE cluster {data['proxmox']['cluster']!r}" + (" with Ceph" if data["proxmox"]["ceph"] else ""), title_justify="left")
        for col in ("host", "source", "cores", "memory GB", "reserve GB", "guests", "guest GB"):
            t.add_column(col)
        for h in data["proxmox"]["hosts"]:
            t.add_row(h["name"], str(h["source"]), str(h["cores"] or "?"), f"{h['memory_gb']:g}" if h["memory_gb"] else "?", f"{h['reserve_gb']:g}", str(h["guests"]), f"{h['guest_memory_gb']:g}")
        con.print(t)
    if data["talos_instances"]:
        t = Table(title="Talos directly on A1 instances (no Proxmox)", title_justify="left")
        for col in ("node", "cluster", "role", "instance", "address"):
            t.add_column(col)
        for n in data["talos_instances"]:
            t.add_row(n["node"], n["cluster"], n["role"], n["instance"], str(n["ip"]))
        con.print(t)
    for c in data["clusters"]:
        con.print(
            f"cluster {c['name']}: Talos {c['talos']}, Kubernetes {c['kubernetes']}, {c['control_planes']} control plane(s), "
            f"{c['workers']} worker(s), CNI {c['cni']}, GitOps {c['gitops'] or 'none'}, endpoint {c['endpoint']}",
            markup=False,
        )
        if c["addons"]:
            con.print(f"  add-ons: {', '.join(c['addons'])}", markup=False)
        if c["load_balancers"]:
            con.print(f"  load balancers: {c['load_balancers']}", markup=False)
    for s in data["services"]:
        con.print(f"service {s['name']} ({s['kind']}) on {s['node']} as LXC {s['vmid']}", markup=False)


@dataclass
class FitSection:
    charged: bool = False
    lines: list[str] = field(default_factory=list)
    payload: dict[str, Any] = field(default_factory=dict)

    def print(self, con) -> None:
        for line in self.lines:
            con.print(line, markup=False)

    def as_json(self) -> dict[str, Any]:
        return self.payload


def fit_section(loaded: LoadedSpec, limits_date: str | None) -> FitSection:
    """The free-tier fit and capacity report; `charged` (or a hard limit broken) makes `check` exit 1."""
    from tierzero.cli.guard_cmd import add_fit_to_check

    fit = add_fit_to_check(loaded.platform, limits_date)
    return FitSection(fit.charged or fit.refused, fit.lines, fit.payload)


# -- the end of a run: deploy, destroy ------------------------------------------------------

SUMMARY_MAX_LINES = 10
_VERBS = {("deploy", "done"): "deployed", ("destroy", "done"): "destroyed"}


def _pack(items: list[str], width: int, indent: str = "  ") -> list[str]:
    """Items joined by " · " into as few lines of at most `width` characters as they fit."""
    lines: list[str] = []
    for item in items:
        if lines and len(lines[-1]) + 3 + len(item) <= width:
            lines[-1] += f" · {item}"
        else:
            lines.append(indent + item)
    return lines


def shown_path(path: Any) -> str:
    """A path as a person would type it: relative to the working directory when inside it."""
    import os
    from pathlib import Path

    full = Path(path).absolute()
    try:
        return str(full.relative_to(Path(os.getcwd())))
    except ValueError:
        return str(full)


def config_files(locations: dict[str, str]) -> list[str]:
    """"kubeconfig: PATH" / "talosconfig: PATH" lines for the files that exist (several clusters: one line each kind)."""
    from pathlib import Path

    out = []
    for kind in ("kubeconfig", "talosconfig"):
        found = {k[len(kind) + 2: -1]: v for k, v in locations.items() if k.startswith(f"{kind} (") and Path(v).is_file()}
        if len(found) == 1:
            out.append(f"  {kind}: {shown_path(next(iter(found.values())))}")
        elif found:
            out.append(f"  {kind}s: " + ", ".join(f"{c} {shown_path(p)}" for c, p in found.items()))
    return out


def run_summary(progress: Any, *, command: str, target: str, status: str, locations: dict[str, str],
                log: dict[str, str], masked: int = 0, phases: bool = True, orphans: Sequence[str] = (), width: int = 100,
                configs: bool = True) -> list[str]:
    """The lines that end a run, at most SUMMARY_MAX_LINES: what happened per phase, the slowest
    steps, retries and warnings, where the kubeconfig/talosconfig are, and last where the log is.
    `phases=False` when the live view already shows one line per phase."""
    from tierzero.engine.progress import outcome_text, seconds

    verb = _VERBS.get((command, status), f"{command} {status}")
    failed = [v.step for v in progress.steps.values() if v.status == "failed"]
    head = f"{verb} ({target}) in {seconds(progress.elapsed())}"
    counts = outcome_text(progress.outcomes())
    lines = [head + (f" at {failed[0]}" if failed else "") + (f": {counts}" if counts else ": nothing to do")]
    if phases:
        items = [f"{p} {outcome_text(progress.outcomes(p)) or 'not reached'}" for p in progress.phase_names()]
        lines += _pack(items, width)
    slow = [f"{v.step} {seconds(v.elapsed)}" for v in progress.slowest(3) if v.elapsed >= 0.05]
    if slow:
        lines.append("  slowest: " + ", ".join(slow))
    retried = sorted((v for v in progress.steps.values() if v.retries), key=lambda v: v.retries, reverse=True)
    if retried:
        top = retried[0]
        more = f" and {len(retried) - 1} more steps" if len(retried) > 1 else ""
        prefix = f"  retried: {top.step} {top.retries}×{more} (last: "
        room = max(20, width - len(prefix) - 1)
        cause = top.last_cause if len(top.last_cause) <= room else top.last_cause[: room - 1] + "…"
        lines.append(f"{prefix}{cause})")
    if progress.warnings:
        n = len(progress.warnings)
        lines.append(f"  {n} warning{'s' if n != 1 else ''} (shown above, and in the log)")
    if orphans:
        lines.append(f"  warning: the state holds steps no longer in the spec: {', '.join(orphans)}; what they built may remain")
    if configs:
        lines += config_files(locations)
    tail = f"log: {shown_path(log['log'])}" if log else "log: none written"
    if masked:
        tail += f" ({masked} value{'s' if masked != 1 else ''} masked as ***)"
    while len(lines) + 1 > SUMMARY_MAX_LINES and len(lines) > 1:  # keep the head, drop detail from the middle
        lines.pop(1)
    return lines + [tail]


def summary_fields(progress: Any, *, log: dict[str, str]) -> dict[str, Any]:
    """What the --json `summary` event adds beyond status, target and locations."""
    return {
        "timings": progress.timing_rows(),
        "phases": {k: round(v, 3) for k, v in progress.timings.phases().items()},
        "changes": {p: dict(progress.outcomes(p)) for p in progress.phase_names()},
        "slowest": [{"step": v.step, "seconds": round(v.elapsed, 3), "retries": v.retries} for v in progress.slowest(3)],
        "warnings": list(progress.warnings),
        "elapsed": round(progress.elapsed(), 3),
        "log": log,
    }


# -- status and validate ----------------------------------------------------------------------

_STATUS_ORDER = ("done", "failed", "running", "pending", "not run")


def latest_log(logs_dir: Any, target: str) -> Any:
    """The readable log of the newest run against `target`, or None."""
    from pathlib import Path

    return max(Path(logs_dir).glob(f"*-{target}.log"), key=lambda p: p.name, default=None)


def status_lines(rows: list[dict[str, Any]], last: Any, *, target: str, locations: dict[str, str], orphans: list[str],
                 world_gone: bool, log: Any, phases: bool = True) -> list[str]:
    """One line per phase (a step that failed or was interrupted gets its own line and error), the
    last run, the config files and the newest log."""
    from collections import Counter
    from datetime import datetime, timezone

    out = []
    if last:
        when = datetime.fromtimestamp(last.started, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        out.append(f"{target}: last run {last.id}, {last.command} ({last.selection}), {last.status} at {when}"
                   + (f": {last.error}" if last.error else ""))
    else:
        out.append(f"no {target} run yet")
    if phases:
        by_phase: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            by_phase.setdefault(r["phase"], []).append(r)
        for phase, items in by_phase.items():
            counts = Counter(r["status"] for r in items)
            mark = "✗" if counts["failed"] else "✓" if counts["done"] == len(items) else "·" if counts["not run"] == len(items) else "…"
            text = ", ".join(f"{counts[s]} {s}" for s in _STATUS_ORDER if counts.get(s))
            secs = sum(r["duration"] or 0.0 for r in items)
            out.append(f"{mark} {phase:<12} {text}" + (f"  {secs:.1f}s" if secs else ""))
            for r in items:
                if r["status"] in ("failed", "running"):
                    why = r["last_error"] or ("interrupted: the next deploy runs it again" if r["status"] == "running" else "")
                    out.append(f"    {r['step']}: {r['status']}" + (f": {why}" if why else ""))
    if orphans:
        out.append(f"state also holds steps no longer in the spec: {', '.join(orphans)}")
    if world_gone:
        out.append("the sandbox world these steps built is gone (wiped or never saved): the next deploy starts from scratch")
    out += config_files(locations)
    out.append(f"log: {shown_path(log)}" if log else "log: none yet")
    return out


def status_table(rows: list[dict[str, Any]]) -> Any:
    import json

    from rich.table import Table

    table = Table(box=None, header_style="bold")
    for col in ("phase", "step", "status", "seconds", "outputs"):
        table.add_column(col, overflow="fold")
    for r in rows:
        outs = json.dumps(r["outputs"], sort_keys=True)
        shown = outs if len(outs) <= 80 else outs[:77] + "..."
        table.add_row(r["phase"], r["step"], r["status"], f"{r['duration']:.1f}" if r["duration"] else "", r["last_error"] or shown)
    return table


_CHECK_MARKS = {"pass": ("✓", "green"), "fail": ("✗", "bold red"), "skip": ("–", "dim")}


def checks_lines(rows: list[Any], *, target: str, elapsed: float, log: dict[str, str], color: bool = False) -> list[Any]:
    """One line per check: mark, name, evidence; then the count, the time and where the log is."""
    from rich.text import Text

    from tierzero.engine.progress import seconds

    width = max((len(r.check) for r in rows), default=0)
    out: list[Any] = []
    if color:  # a terminal: long evidence wraps inside its column
        from rich.table import Table

        grid = Table.grid(padding=(0, 1))
        grid.add_column(no_wrap=True)
        grid.add_column(no_wrap=True)
        grid.add_column(overflow="fold")
        for r in rows:
            mark, style = _CHECK_MARKS.get(r.status, ("?", ""))
            grid.add_row(Text(mark, style=style), r.check + " ", Text(r.evidence, style="red" if r.status == "fail" else ""))
        out.append(grid)
    else:
        for r in rows:
            mark, _ = _CHECK_MARKS.get(r.status, ("?", ""))
            out.append(Text(f"{mark} {r.check.ljust(width)}  {r.evidence}"))
    counts = {s: sum(r.status == s for r in rows) for s in ("pass", "fail", "skip")}
    out.append(Text(f"{counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped of {len(rows)} checks "
                    f"({target}) in {seconds(elapsed)}"))
    out.append(Text(f"log: {shown_path(log['log'])}" if log else "log: none written"))
    return out
