"""`tierzero diagram`: a picture of what the spec and the workspace state describe."""

from __future__ import annotations

from pathlib import Path

import typer

SPEC_OPTION = typer.Option(Path("tierzero.yaml"), "--file", "-f", help="The spec file.")
FORMATS = ("mermaid", "svg")


def register(app: typer.Typer) -> None:
    app.command("diagram")(diagram)


def diagram(
    file: Path = SPEC_OPTION,
    fmt: str = typer.Option("mermaid", "--format", help="mermaid (Markdown with ```mermaid blocks: the topology and the deploy Gantt chart) "
                                                         "or svg (the topology, laid out by Graphviz)."),
    out: Path = typer.Option(None, "--output", "-o", help="Write to this file instead of stdout."),
    target: str = typer.Option(None, "--target", "-t", help="whose measured step times: real or sandbox; default the target of the last "
                                                            "deploy or destroy in this workspace."),
) -> None:
    """Draw the cloud, the hosts and their VMs, the clusters and add-ons, the networks with their CIDRs,
    and the deploy DAG with measured step times (Mermaid Gantt chart)."""
    from tierzero.cli.deploy_cmd import _followed_target
    from tierzero.cli.session import Session
    from tierzero.engine.snapshot import deploy_snapshot
    from tierzero.errors import InputError
    from tierzero.render.diagram import document, dot_source, topology

    if fmt not in FORMATS:
        raise InputError(f"--format: unknown format {fmt!r}", hint=f"use one of: {', '.join(FORMATS)}")
    target = _followed_target(file, target)
    with Session(file, target, lock=False, offline=True) as runner:
        snapshot = deploy_snapshot(runner.graph, runner.state.records(), target=target, last_run=runner.state.last_run())
        spec = runner.spec
    drawn = topology(spec, snapshot)
    if fmt == "mermaid":
        text = document(drawn, snapshot, source=file.name)
    else:
        from tierzero.adapters.graphviz_svg import svg_from_dot

        text = svg_from_dot(dot_source(drawn))
    if out is None:
        typer.echo(text, nl=False)
        return
    from tierzero.workspace.layout import write_public

    write_public(out, text)
    typer.echo(f"wrote {out}", err=True)
