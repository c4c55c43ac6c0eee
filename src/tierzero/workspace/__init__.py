"""The workspace: `.tierzero/` beside the spec, holding keys, state and rendered output."""

from tierzero.workspace.layout import Workspace

__all__ = ["Workspace"]
