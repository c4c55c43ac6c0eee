"""Wires every command module into the root app. Command modules import only typer at the top."""

from __future__ import annotations

import typer

_MODULES = ("spec_cmds", "talos_cmd", "guard_cmd", "plan_cmd", "deploy_cmd", "tunnel_cmd", "backup_cmd", "diagram_cmd")


def register(app: typer.Typer) -> None:
    import importlib

    for name in _MODULES:
        importlib.import_module(f"tierzero.cli.{name}").register(app)
