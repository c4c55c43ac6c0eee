"""The `tierzero` command. Kept thin: every command module imports its heavy parts lazily,
so `tierzero --help` stays fast."""

from __future__ import annotations

import gc
import os
import sys

import typer

from tierzero import __version__
from tierzero.cli import output

app = typer.Typer(
    name="tierzero",
    help="One spec (tierzero.yaml) to a GitOps-managed Talos Kubernetes platform on Proxmox VE, at $0.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"tierzero {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    output.state.debug = debug


def _register() -> None:
    from tierzero.cli import commands

    commands.register(app)


def run(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI and map every failure to a message and an exit code. Called
    without `argv` it is the process's own command (the `tierzero` script, `python -m
    tierzero`) and also tunes the garbage collector for one short run; with `argv` (a caller's
    process, tests) it leaves the collector alone."""
    whole_process = argv is None
    # tierzero's spec models use no pydantic plugin; looking them up scans every installed
    # distribution's entry points (about 70 ms a run on a loaded machine). The variable is
    # pydantic's own switch (pydantic/plugin/_loader.py); a value set by the user is kept.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    # A run allocates hundreds of thousands of long-lived objects while it imports the SDKs; at
    # the default threshold (700) the collector ran ~370 young and 3 full collections in a no-op
    # sandbox re-run, 0.3 s of CPU; at 50,000 about 5 young ones, 0.08 s. Garbage in cycles
    # still goes within 50,000 allocations.
    if whole_process:
        gc.set_threshold(50_000, 20, 20)
    _register()
    code = output.invoke(app, sys.argv[1:] if argv is None else argv)
    # The command has finished and closed what it opened. Python's shutdown still runs full
    # garbage collections over every object the run loaded (the SDKs' models, the stand-ins):
    # measured 0.2 s to 3 s after the last line on the shared 2-core machine, as long as the
    # whole no-op re-run's checks. Frozen objects are left out of those collections
    # (gc.freeze, https://docs.python.org/3/library/gc.html#gc.freeze); atexit handlers, thread
    # joins and module teardown still run as before.
    if whole_process:
        gc.freeze()
    sys.exit(code)
