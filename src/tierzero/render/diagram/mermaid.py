"""Mermaid text: the topology as a flowchart, the deploy DAG as a Gantt chart, and both as one
Markdown document a README can carry (GitHub, GitLab and Gitea draw ```mermaid blocks).

Syntax facts used (mermaid 11, docs mermaid.js.org/syntax/flowchart.html and gantt.html):
- a quoted label takes any text except `"`; entity codes (`#quot;`, `#35;`) stand for the rest, `<br>` breaks a line;
- a node id right after an arrow that starts with `o` or `x` makes a circle/cross edge unless a space separates them;
- a Gantt task is `name :tags, id, start, end`: the name ends at the first `:`, so names carry none; `dateFormat x` reads
  start and end as Unix milliseconds; `todayMarker off` keeps today's line (decades from 1970) off the chart."""

from __future__ import annotations

from tierzero.render.diagram.schedule import DeploySnapshot, schedule
from tierzero.render.diagram.topology import Box, Group, Kind, Topology

_SHAPES: dict[Kind, tuple[str, str]] = {
    "cloud": ("[", "]"), "network": ("[", "]"), "instance": ("[", "]"), "host": ("[[", "]]"), "vm": ("(", ")"),
    "lxc": ("[(", ")]"), "cluster": ("[", "]"), "addon": ("([", "])"), "gitops": ("{{", "}}"), "external": (">", "]"),
}
_STYLES: dict[Kind, str] = {
    "instance": "fill:#fde9d9,stroke:#c74634", "host": "fill:#e6f0fa,stroke:#2f6fb3", "vm": "fill:#e8f5e9,stroke:#2e7d32",
    "lxc": "fill:#f3e5f5,stroke:#7b1fa2", "cluster": "fill:#e0f7fa,stroke:#00838f", "addon": "fill:#fffde7,stroke:#9e9d24",
    "gitops": "fill:#ede7f6,stroke:#4527a0", "external": "fill:#f5f5f5,stroke:#616161",
}


def label(lines: tuple[str, ...]) -> str:
    """A quoted Mermaid label: lines joined by <br>, the characters Mermaid would read as syntax written as entity codes."""
    safe = [line.replace("#", "#35;").replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;") for line in lines if line]
    return '"' + "<br>".join(safe) + '"'


def flowchart(top: Topology) -> str:
    """The topology as a `flowchart LR`: one subgraph per group (nested as the groups are), one node per box."""
    out = ["flowchart LR"]

    def box(b: Box, indent: str) -> None:
        left, right = _SHAPES[b.kind]
        out.append(f"{indent}{b.id}{left}{label(b.lines)}{right}")

    def group(g: Group, indent: str) -> None:
        out.append(f"{indent}subgraph {g.id}[{label(g.lines)}]")
        for b in g.boxes:
            box(b, indent + "  ")
        for child in g.groups:
            group(child, indent + "  ")
        out.append(f"{indent}end")

    for b in top.boxes:
        box(b, "  ")
    for g in top.groups:
        group(g, "  ")
    for link in top.links:
        arrow = "-.->" if link.dotted else "-->"
        text = f"|{label((link.label,))}|" if link.label else ""
        out.append(f"  {link.source} {arrow}{text} {link.target}")
    kinds: dict[Kind, list[str]] = {}
    for b in top.all_boxes():
        kinds.setdefault(b.kind, []).append(b.id)
    for kind, ids in kinds.items():
        if kind in _STYLES:
            out.append(f"  classDef {kind} {_STYLES[kind]}")
            out.append(f"  class {','.join(ids)} {kind}")
    return "\n".join(out) + "\n"


def _task_name(text: str) -> str:
    return "".join(" " if ch in ":;#" else ch for ch in text)


def _seconds(value: float) -> str:
    return f"{value:.2f} s" if value < 1 else f"{value:.1f} s" if value < 120 else f"{value / 60:.1f} min"


def gantt(snapshot: DeploySnapshot) -> str | None:
    """The deploy DAG with measured step times as a `gantt` chart: a section per phase, a bar per
    measured step placed by the DAG (see schedule), the critical path tagged `crit`, a failed or
    still running step `active`. None when no step was measured yet."""
    slots, makespan = schedule(snapshot)
    if not slots:
        return None
    axis = "%H:%M:%S" if makespan >= 3600 else "%M:%S"
    measured, total = len(slots), len(snapshot.steps)
    title = f"deploy DAG ({snapshot.target}), measured step times, critical path {_seconds(makespan)}"
    if measured < total:
        title += f", {measured} of {total} steps measured"
    out = ["gantt", f"  title {_task_name(title)}", "  dateFormat x", f"  axisFormat {axis}", "  todayMarker off"]
    section = None
    for n, slot in enumerate(slots, 1):
        step = slot.step
        if step.phase != section:
            section = step.phase
            out.append(f"  section {_task_name(section)}")
        tags = (["crit"] if slot.critical else []) + (["done"] if step.status == "done" else ["active"] if step.status in ("failed", "running") else [])
        note = "" if step.status == "done" else f" ({step.status})"
        start, end = round(slot.start * 1000), round(slot.end * 1000)
        end = max(end, start + 1)  # a zero-length bar is drawn as nothing
        name = _task_name(f"{step.id} {_seconds(step.seconds or 0.0)}{note}")
        out.append(f"  {name} :{', '.join([*tags, f't{n}'])}, {start}, {end}")
    return "\n".join(out) + "\n"


def document(top: Topology, snapshot: DeploySnapshot, *, source: str) -> str:
    """Markdown with the flowchart and, once a deploy was measured, the Gantt chart, each in a ```mermaid block."""
    parts = [f"<!-- drawn by `tierzero diagram` from {source} and the workspace state ({snapshot.target}); do not edit: draw it again -->",
             "", f"### {top.title}", "", "```mermaid", flowchart(top).rstrip("\n"), "```", ""]
    chart = gantt(snapshot)
    parts.append("### deploy")
    parts.append("")
    if chart is None:
        parts.append(f"No step of the {snapshot.target} target was measured yet ({len(snapshot.steps)} steps in the DAG): "
                     "run `tierzero deploy`, then draw again.")
    else:
        parts += ["```mermaid", chart.rstrip("\n"), "```"]
    return "\n".join(parts) + "\n"


def mermaid_blocks(markdown: str) -> list[str]:
    """The text of each ```mermaid block of a Markdown document, in order."""
    blocks: list[str] = []
    current: list[str] | None = None
    for line in markdown.splitlines():
        if current is None and line.strip() == "```mermaid":
            current = []
        elif current is not None and line.strip() == "```":
            blocks.append("\n".join(current) + "\n")
            current = None
        elif current is not None:
            current.append(line)
    return blocks
