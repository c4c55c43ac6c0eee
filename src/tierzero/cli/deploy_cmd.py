"""`deploy`, `status`, `validate` and `destroy`: running the step graph of a spec."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

SPEC_OPTION = typer.Option(Path("tierzero.yaml"), "--file", "-f", help="The spec file.")
TARGET_OPTION = typer.Option("real", "--target", "-t", help="real (your cloud and hosts) or sandbox (local stand-ins).")
JSON_OPTION = typer.Option(False, "--json", help="Machine-readable output (deploy: a JSON-lines event stream).")
YES_OPTION = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation.")


def register(app: typer.Typer) -> None:
    app.command("deploy")(deploy)
    app.command("status")(status)
    app.command("validate")(validate)
    app.command("destroy")(destroy)


def _confirm(question: str, *, target: str, yes: bool, json_out: bool = False) -> None:
    import sys

    from tierzero.errors import RefusedError

    if yes:
        return
    if json_out and target == "real":  # a prompt would corrupt the event stream
        raise RefusedError(f"refusing to {question} without confirmation", hint="pass --yes together with --json")
    if not sys.stdin.isatty():
        if target == "sandbox":
            return
        raise RefusedError(f"refusing to {question} without confirmation", hint="pass --yes, or run in a terminal to be asked")
    if not typer.confirm(f"{question}?", default=False):
        raise RefusedError("cancelled; nothing was changed")


def deploy(
    file: Path = SPEC_OPTION,
    target: str = TARGET_OPTION,
    only: str = typer.Option(None, "--only", help="Run only this phase (earlier phases must have finished)."),
    start: str = typer.Option(None, "--from", help="Run from this phase on."),
    until: str = typer.Option(None, "--until", help="Run up to and including this phase."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would run and why; change nothing."),
    yes: bool = YES_OPTION,
    json_out: bool = JSON_OPTION,
    concurrency: int = typer.Option(8, "--concurrency", min=1, help="Steps run at once at most."),
) -> None:
    """Build the platform: run every phase's steps, skipping those already done with unchanged inputs."""
    import asyncio

    from tierzero.cli import output
    from tierzero.engine.progress import make_progress, print_timings
    from tierzero.engine.runner import Selection
    from tierzero.engine.session import Session

    progress = make_progress(json_out and not dry_run)
    session = Session(file, target, emit=progress)
    selection = Selection(only, start, until)
    with session as runner:
        runner.concurrency = concurrency
        plan = runner.plan(selection)
        if dry_run:
            _print_plan(plan, json_out)
            return
        changing = [p for p in plan if p.action == "run" and runner.graph.steps[p.step_id].real_only]
        if target == "real" and changing:
            if not json_out:
                output.console().print(f"{len(changing)} steps will change real infrastructure:", markup=False)
                for item in changing:
                    output.console().print(f"  {item.step_id}: {item.description} ({item.reason})", markup=False)
            _confirm(f"change real infrastructure ({len(changing)} steps)", target=target, yes=yes, json_out=json_out)
        try:
            with progress:
                asyncio.run(runner.run(selection))
        finally:
            if not json_out:
                print_timings(progress, output.console())
        where = session.locations()
        orphans = sorted(set(runner.state.records()) - set(runner.graph.steps))
        if json_out:
            progress("summary", status="done", target=target, locations=where, orphans=orphans,
                     timings=progress.timing_rows(), phases={k: round(v, 3) for k, v in progress.timings.phases().items()})
        else:
            con = output.console()
            con.print(f"deployed ({target}); everything is at:", markup=False)
            for name, path in where.items():
                con.print(f"  {name}: {path}", markup=False)
            if orphans:
                con.print(f"warning: the state holds steps no longer in the spec: {', '.join(orphans)}; what they built may remain",
                          markup=False)


def _print_plan(plan: list[Any], json_out: bool) -> None:
    from tierzero.cli import output

    if json_out:
        output.print_json({"plan": [p.as_dict() for p in plan]})
        return
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    for col in ("action", "phase", "step", "why"):
        table.add_column(col)
    for p in plan:
        table.add_row(p.action, p.phase, p.step_id, p.reason)
    con = output.console()
    con.print(table)
    runs = sum(1 for p in plan if p.action == "run")
    con.print(f"{runs} of {len(plan)} steps would run (dry run: nothing changed)", markup=False)


def status(file: Path = SPEC_OPTION, target: str = TARGET_OPTION, json_out: bool = JSON_OPTION) -> None:
    """Show each phase's steps: status, timings, outputs, and the last run."""
    import json
    from datetime import datetime, timezone

    from tierzero.cli import output
    from tierzero.engine.session import Session

    session = Session(file, target, lock=False, offline=True)
    with session as runner:
        records = runner.state.records()
        last = runner.state.last_run()
        rows = []
        for sid in runner.graph.order:
            rec = records.get(sid)
            rows.append({"step": sid, "phase": runner.graph.phase_of(sid), "status": rec.status if rec else "not run",
                         "duration": rec.duration if rec else None, "attempts": rec.attempts if rec else 0,
                         "outputs": rec.outputs if rec else {}, "last_error": rec.last_error if rec else None})
        orphans = sorted(set(records) - set(runner.graph.steps))
        locations = session.locations()
        world_gone = False
        if target == "sandbox" and records:
            from tierzero.sandbox.world import World

            world_gone = World.current_id(session.workspace) != runner.state.get_meta("sandbox_world")
    if json_out:
        output.print_json({"target": target, "last_run": last.as_dict() if last else None, "steps": rows, "orphans": orphans,
                           "locations": locations, **({"sandbox_world": "gone"} if world_gone else {})})
        return
    from rich.table import Table

    con = output.console()
    if last:
        when = datetime.fromtimestamp(last.started, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        con.print(f"last run {last.id}: {last.command} ({last.selection}) {last.status} at {when}" + (f": {last.error}" if last.error else ""), markup=False)
    else:
        con.print(f"no {target} run yet", markup=False)
    table = Table(box=None, header_style="bold")
    for col in ("phase", "step", "status", "seconds", "outputs"):
        table.add_column(col, overflow="fold")
    for r in rows:
        outs = json.dumps(r["outputs"], sort_keys=True)
        shown = outs if len(outs) <= 80 else outs[:77] + "..."
        table.add_row(r["phase"], r["step"], r["status"], f"{r['duration']:.1f}" if r["duration"] else "", r["last_error"] or shown)
    con.print(table)
    if orphans:
        con.print(f"state also holds steps no longer in the spec: {', '.join(orphans)}", markup=False)
    if world_gone:
        con.print("the sandbox world these steps built is gone (wiped or never saved): the next deploy starts from scratch", markup=False)


def validate(file: Path = SPEC_OPTION, target: str = TARGET_OPTION, json_out: bool = JSON_OPTION) -> None:
    """Check the running platform end to end: one row per check, with its evidence."""
    import asyncio

    from tierzero.cli import output
    from tierzero.engine.session import Session
    from tierzero.phases.validate import run_checks

    session = Session(file, target, lock=False)
    with session as runner:
        rows = asyncio.run(run_checks(runner.context_from_state("validate/checks")))
    failed = [r for r in rows if r.status == "fail"]
    if json_out:
        output.print_json({"target": target, "ok": not failed, "checks": [r.as_dict() for r in rows]})
    else:
        from rich.table import Table

        table = Table(box=None, header_style="bold")
        for col in ("result", "check", "evidence"):
            table.add_column(col, overflow="fold")
        for r in rows:
            table.add_row(r.status.upper(), r.check, r.evidence)
        con = output.console()
        con.print(table)
        con.print(f"{len(rows) - len(failed)} of {len(rows)} checks passed or skipped", markup=False)
    if failed:
        raise typer.Exit(1)


def destroy(file: Path = SPEC_OPTION, target: str = TARGET_OPTION, yes: bool = YES_OPTION) -> None:
    """Undo what deploy built, in reverse order."""
    import asyncio

    from tierzero.cli import output
    from tierzero.engine.progress import make_progress
    from tierzero.engine.session import Session

    progress = make_progress(False)
    session = Session(file, target, emit=progress)
    con = output.console()
    with session as runner:
        records = runner.state.records()
        undo = [sid for sid in reversed(runner.graph.order) if sid in records and runner.graph.steps[sid].destroy]
        orphans = sorted(set(records) - set(runner.graph.steps))
        if not records:
            con.print(f"nothing to destroy: no {target} state", markup=False)
            return
        con.print(f"{len(undo)} steps will be undone ({target}): {', '.join(undo) or 'none'}", markup=False)
        _confirm(f"destroy the {target} platform", target=target, yes=yes)
        with progress:
            asyncio.run(runner.destroy())
        left = runner.state.records()
        guests = session.sandbox_guests() if target == "sandbox" else []
    con.print(f"destroyed ({target}); {len(undo)} steps undone", markup=False)
    if target == "sandbox":
        from tierzero.sandbox.world import World

        World.wipe(session.workspace)  # what is left is the stand-ins' own "hardware": the next deploy starts bare
        if guests:
            from tierzero.errors import OperationError

            raise OperationError(f"destroy left guests behind in the sandbox Proxmox: {', '.join(guests)}",
                                 hint="a destroy step missed them: this is a tierzero bug; the sandbox world was wiped")
    if orphans or left:
        from tierzero.errors import RefusedError

        names = sorted(set(orphans) | set(left))
        raise RefusedError(f"state still holds steps not in the spec: {', '.join(names)}",
                           hint="their resources may remain; restore the spec that created them and destroy again")
