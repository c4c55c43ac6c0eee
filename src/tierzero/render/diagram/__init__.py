"""Pictures of what the spec and the workspace state describe (`tierzero diagram`): the cloud,
the Proxmox hosts and their VMs, the clusters and add-ons, the networks with their CIDRs, and the
deploy DAG with measured step times. Pure functions: a Platform and a DeploySnapshot in, text out
(Mermaid Markdown, or Graphviz DOT that adapters/graphviz_svg.py lays out as SVG)."""

from __future__ import annotations

from tierzero.render.diagram.dot import dot_source
from tierzero.render.diagram.mermaid import document, flowchart, gantt, mermaid_blocks
from tierzero.render.diagram.schedule import DeploySnapshot, Slot, StepTime, schedule
from tierzero.render.diagram.topology import Box, Group, Link, Topology, topology

__all__ = ["Box", "DeploySnapshot", "Group", "Link", "Slot", "StepTime", "Topology", "document", "dot_source", "flowchart", "gantt",
           "mermaid_blocks", "schedule", "topology"]
