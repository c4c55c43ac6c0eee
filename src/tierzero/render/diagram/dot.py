"""Graphviz DOT source of the topology, for `tierzero diagram --format svg` (the `dot` program lays
it out: adapters/graphviz_svg.py). Built with the `graphviz` package's Digraph, which only writes
text (it quotes every id and label); nothing here runs a program.

DOT facts used (graphviz.org/doc/info/lang.html, attrs.html): a subgraph whose name starts with
`cluster` is drawn as a box around its nodes; in a quoted string `\\n` breaks a centred line."""

from __future__ import annotations

import graphviz

from tierzero.render.diagram.topology import Group, Kind, Topology

_SHAPES: dict[Kind, tuple[str, str]] = {  # (shape, fill colour)
    "cloud": ("box", "#ffffff"), "network": ("box", "#ffffff"), "instance": ("box", "#fde9d9"), "host": ("box3d", "#e6f0fa"),
    "vm": ("box", "#e8f5e9"), "lxc": ("cylinder", "#f3e5f5"), "cluster": ("box", "#e0f7fa"), "addon": ("box", "#fffde7"),
    "gitops": ("hexagon", "#ede7f6"), "external": ("note", "#f5f5f5"),
}
_GROUP_COLOURS: dict[Kind, str] = {"cloud": "#c74634", "network": "#e07b6a", "host": "#2f6fb3", "cluster": "#00838f"}


def _label(lines: tuple[str, ...]) -> str:
    return "\\n".join(line.replace("\\", "\\\\") for line in lines if line)


def dot_source(top: Topology) -> str:
    """The topology as DOT text: one `cluster_` subgraph per group, one node per box, the links as edges."""
    graph = graphviz.Digraph(name="tierzero", graph_attr={"rankdir": "LR", "fontname": "Helvetica", "label": top.title, "labelloc": "t",
                                                         "compound": "true", "newrank": "true"},
                             node_attr={"fontname": "Helvetica", "fontsize": "10", "style": "filled,rounded"},
                             edge_attr={"fontname": "Helvetica", "fontsize": "9"})

    def add_group(parent: graphviz.Digraph, g: Group) -> None:
        with parent.subgraph(name=f"cluster_{g.id}") as sub:
            sub.attr(label=_label(g.lines), color=_GROUP_COLOURS.get(g.kind, "#9e9e9e"), style="rounded", fontsize="11")
            for b in g.boxes:
                shape, fill = _SHAPES[b.kind]
                sub.node(b.id, _label(b.lines), shape=shape, fillcolor=fill, **({"style": "filled"} if shape in ("box3d", "cylinder", "note") else {}))
            for child in g.groups:
                add_group(sub, child)

    for b in top.boxes:
        shape, fill = _SHAPES[b.kind]
        graph.node(b.id, _label(b.lines), shape=shape, fillcolor=fill, style="filled")
    for g in top.groups:
        add_group(graph, g)
    for link in top.links:
        graph.edge(link.source, link.target, label=link.label, style="dashed" if link.dotted else "solid")
    return graph.source
