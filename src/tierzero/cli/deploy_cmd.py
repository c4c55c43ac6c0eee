"""`deploy`, `status`, `validate` and `destroy`: running the step graph of a spec.

What a person sees is terse by default (one line per phase on a terminal, one line per step in
a pipe), `-v` adds every command and API call as it is sent, and every run writes its full,
redacted event log to `.tierzero/logs/` (the last line printed says where). `--json` is the
machine interface: deploy and destroy stream JSON-lines events ending in a `summary` event;
status and validate print one JSON document."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

SPEC_OPTION = typer.Option(Path("tierzero.yaml"), "--file", "-f", help="The spec file.")
TARGET_OPTION = typer.Option("real", "--target", "-t", help="real (your cloud and hosts) or sandbox (local stand-ins).")
JSON_OPTION = typer.Option(False, "--json", help="Machine-readable output (deploy, destroy: a JSON-lines event stream).")
YES_OPTION = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation.")
VERBOSE_OPTION = typer.Option(False, "--verbose", "-v", help="Also show every command and API call as it is sent, and each step's narration.")
TIMINGS_OPTION = typer.Option(False, "--timings", help="End with the full table of step timings.")
FOLLOW_TARGET_OPTION = typer.Option(None, "--target", "-t", help=(
    "real or sandbox; default: the target of the last deploy or destroy in this workspace (real if there was none)."))


def _followed_target(file: Path, target: str | None) -> str:
    """An explicit --target, else the one the workspace last deployed or destroyed, else real."""
    if target is not None:
        return target
    from tierzero.engine.state import last_run_target
    from tierzero.workspace import Workspace

    return last_run_target(Workspace.beside(file).state_dir) or "real"


def _selected_phases(only: str | None, start: str | None, until: str | None) -> list[str] | None:
    """The phases --only/--from/--until choose, or None (all, or a bad choice the run reports)."""
    from tierzero.engine.step import PHASES

    if any(v is not None and v not in PHASES for v in (only, start, until)) or (only and (start or until)):
        return None
    if only:
        return [only]
    lo, hi = PHASES.index(start) if start else 0, PHASES.index(until) if until else len(PHASES) - 1
    return list(PHASES[lo:hi + 1]) if lo <= hi else None


def _preflight(file: Path, target: str, *, purpose: str = "deploy", phases: list[str] | None = None) -> Any:
    """Before any step: secret references resolve; for the real target, credentials, tools and
    reachability of the selected phases (see tierzero.phases.preflight). Raises PreflightFailed (exit 2).
    Returns the spec it loaded (a `LoadedSpec`, for the session: the file is read and parsed once), or
    None for an unknown target."""
    from tierzero.phases.preflight import check_before_run
    from tierzero.spec import load_spec
    from tierzero.workspace import Workspace

    if target not in ("real", "sandbox"):
        return None  # the Session refuses it with the usual message
    loaded = load_spec(file)
    check_before_run(loaded, Workspace.beside(loaded.path), target, purpose=purpose, phases=phases)
    return loaded


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


class _Run:
    """The sinks of one command's run: the view (`progress`), the log files, and both at once (`emit`)."""

    def __init__(self, file: Path, command: str, target: str, *, json_out: bool, verbose: bool, log: bool = True) -> None:
        from tierzero.engine.progress import Tee
        from tierzero.engine.progress_views import make_progress
        from tierzero.engine.runlog import RunLog
        from tierzero.workspace import Workspace

        self.command, self.target, self.json_out = command, target, json_out
        self.progress = make_progress(json_out, verbose=verbose)
        self.log = RunLog(Workspace.beside(file).logs_dir, command, target) if log else None
        self.emit = Tee(self.progress, self.log)

    def opening(self, target: str, what: str = "") -> Any:
        """A transient spinner on a terminal while the run gets ready (loading the spec, starting the sandbox)."""
        from contextlib import nullcontext

        console = getattr(self.progress, "console", None)
        if not getattr(self.progress, "shows_phases", False) or console is None:
            return nullcontext()
        what = what or ("loading the spec and starting the sandbox stand-ins" if target == "sandbox" else "loading the spec")
        return console.status(what + "…")

    def mark_shown(self, exc: BaseException) -> None:
        """A failed step's cause and remedy stay on a terminal's live view: the error need not follow it again."""
        from tierzero.engine.runner import StepFailed

        if isinstance(exc, StepFailed) and getattr(self.progress, "shows_phases", False):
            exc.shown = True  # type: ignore[attr-defined]

    def finish(self, status: str, *, locations: dict[str, str], timings: bool = False, **extra: Any) -> None:
        """The summary (a `summary` event with --json), then the log's location; closes the log."""
        from tierzero.cli import output
        from tierzero.cli.summary import run_summary, summary_fields
        from tierzero.engine.progress import print_timings

        paths = self.log.paths if self.log else {}
        fields = {"status": status, "target": self.target, "locations": locations, **extra,
                  **summary_fields(self.progress, log=paths), "masked": self.log.masked if self.log else 0}
        if self.json_out:
            self.emit("summary", **fields)
        elif self.log is not None:
            self.log("summary", **fields)
        if self.log is not None:
            self.log.close()
        if self.json_out:
            return
        con = output.console()
        if timings:
            print_timings(self.progress, con)
        lines = run_summary(self.progress, command=self.command, target=self.target, status=status, locations=locations,
                            log=paths, masked=self.log.masked if self.log else 0, orphans=extra.get("orphans", []),
                            phases=not getattr(self.progress, "shows_phases", False), configs=self.command == "deploy",
                            width=max(60, con.width))
        for line in lines:
            con.print(line, markup=False, highlight=False)


def deploy(
    file: Path = SPEC_OPTION,
    target: str = TARGET_OPTION,
    only: str = typer.Option(None, "--only", help="Run only this phase (earlier phases must have finished)."),
    start: str = typer.Option(None, "--from", help="Run from this phase on."),
    until: str = typer.Option(None, "--until", help="Run up to and including this phase."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would run and why; change nothing."),
    yes: bool = YES_OPTION,
    json_out: bool = JSON_OPTION,
    verbose: bool = VERBOSE_OPTION,
    timings: bool = TIMINGS_OPTION,
    concurrency: int = typer.Option(8, "--concurrency", min=1, help="Steps run at once at most."),
    force: bool = typer.Option(False, "--force", help="Push the GitOps tree on top of commits tierzero did not make (they stay in history; "
                                                      "their changes to the tree are replaced)."),
) -> None:
    """Build the platform: run every phase's steps, skipping those already done with unchanged inputs."""
    import asyncio

    from tierzero.cli import output
    from tierzero.engine.runner import Selection
    from tierzero.cli.session import Session

    loaded = None
    if not dry_run:  # nothing is locked, logged, started or changed before this passes
        loaded = _preflight(file, target, phases=_selected_phases(only, start, until))
    run = _Run(file, "deploy", target, json_out=json_out and not dry_run, verbose=verbose, log=not dry_run)
    session = Session(file, target, emit=run.emit, loaded=loaded)
    selection = Selection(only, start, until)
    with run.opening(target):
        runner = session.open()
    with _closing(session):
        runner.concurrency = concurrency
        runner.connections.git.force = force
        with run.opening(target, "working out what changed"):
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
        status = "interrupted"
        try:
            with run.progress:
                asyncio.run(runner.run(selection))
            status = "done"
        except Exception as exc:
            status = "failed"
            run.mark_shown(exc)
            raise
        finally:
            orphans = sorted(set(runner.state.records()) - set(runner.graph.steps))
            run.finish(status, locations=session.locations(), timings=timings, orphans=orphans)


def _closing(session: Any) -> Any:
    from contextlib import contextmanager

    @contextmanager
    def closing() -> Any:
        try:
            yield session
        finally:
            session.close()

    return closing()


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


def status(file: Path = SPEC_OPTION, target: str = FOLLOW_TARGET_OPTION, json_out: bool = JSON_OPTION, verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Every step with its status, time and outputs.")) -> None:
    """Show each phase: its steps' status, the last run, where the configs and the last log are."""
    from tierzero.cli import output
    from tierzero.cli.session import Session
    from tierzero.cli.summary import latest_log, status_lines, status_table

    target = _followed_target(file, target)
    session = Session(file, target, lock=False, offline=True)
    with session as runner:
        records = runner.state.records()
        last = runner.state.last_run()
        rows: list[dict[str, Any]] = []
        for sid in runner.graph.order:
            rec = records.get(sid)
            rows.append({"step": sid, "phase": runner.graph.phase_of(sid), "status": rec.status if rec else "not run",
                         "duration": rec.duration if rec else None, "attempts": rec.attempts if rec else 0,
                         "outputs": rec.outputs if rec else {}, "last_error": rec.last_error if rec else None})
        orphans = sorted(set(records) - set(runner.graph.steps))
        locations = session.locations()
        world_gone = False
        if target == "sandbox" and records:
            world_gone = session.sandbox_world_gone()
        log = latest_log(session.workspace.logs_dir, target)
    if json_out:
        output.print_json({"target": target, "last_run": last.as_dict() if last else None, "steps": rows, "orphans": orphans,
                           "locations": locations, **({"sandbox_world": "gone"} if world_gone else {}),
                           "log": str(log) if log else None})
        return
    con = output.console()
    if verbose:
        con.print(status_table(rows))
    for line in status_lines(rows, last, target=target, locations=locations, orphans=orphans, world_gone=world_gone, log=log,
                             phases=not verbose):
        con.print(line, markup=False, highlight=False)


def validate(file: Path = SPEC_OPTION, target: str = FOLLOW_TARGET_OPTION, json_out: bool = JSON_OPTION, verbose: bool = VERBOSE_OPTION) -> None:
    """Check the running platform end to end: one line per check, with its evidence."""
    import asyncio
    import time
    from contextlib import nullcontext

    from tierzero.adapters import calls
    from tierzero.cli import output
    from tierzero.cli.session import Session
    from tierzero.cli.summary import checks_lines
    from tierzero.engine.progress_views import make_progress
    from tierzero.engine.state import finished_steps
    from tierzero.errors import RefusedError
    from tierzero.phases.validate import run_checks
    from tierzero.workspace import Workspace

    target = _followed_target(file, target)
    if target == "real":
        if not finished_steps(Workspace.beside(file).state_dir, "real"):
            raise RefusedError("nothing real was built from this workspace yet: no step of a real deploy has finished, "
                               "so there is nothing to validate and no node to contact",
                               hint="run `tierzero deploy` first, or validate the sandbox with --target sandbox")
        loaded = _preflight(file, target, purpose="validate")
    else:
        loaded = None
    run = _Run(file, "validate", target, json_out=json_out, verbose=verbose)
    if json_out:  # one JSON document, not an event stream: the events go to the log only
        run.emit.sinks = [run.log]
    else:
        run.progress = make_progress(False, verbose=verbose)  # lines above the table, never a live view
        run.emit.sinks = [run.progress, run.log]
    session = Session(file, target, lock=False, emit=run.emit, loaded=loaded)
    t0 = time.monotonic()
    assert run.log is not None
    con = output.console()
    try:
        with con.status("running the checks…") if con.is_terminal and not json_out else nullcontext(), session as runner:
            ctx = runner.context_from_state("validate/checks")
            with calls.receiving(lambda **f: run.emit("call", step="validate/checks", phase="validate", **f)):
                rows = asyncio.run(run_checks(ctx))
        failed = [r for r in rows if r.status == "fail"]
        report = {"target": target, "ok": not failed, "checks": [r.as_dict() for r in rows]}
        run.log("summary", **report, elapsed=round(time.monotonic() - t0, 3), log=run.log.paths)
    finally:
        run.log.close()
    if json_out:
        output.print_json({**report, "log": run.log.paths.get("log")})
    else:
        for line in checks_lines(rows, target=target, elapsed=time.monotonic() - t0, log=run.log.paths, color=con.is_terminal):
            con.print(line, highlight=False)
    if failed:
        raise typer.Exit(1)


def destroy(file: Path = SPEC_OPTION, target: str = TARGET_OPTION, yes: bool = YES_OPTION, json_out: bool = JSON_OPTION,
            verbose: bool = VERBOSE_OPTION, timings: bool = TIMINGS_OPTION) -> None:
    """Undo what deploy built, in reverse order."""
    import asyncio

    from tierzero.cli import output
    from tierzero.cli.session import Session

    run = _Run(file, "destroy", target, json_out=json_out, verbose=verbose)
    session = Session(file, target, emit=run.emit)
    con = output.console()
    with session as runner:
        records = runner.state.records()
        undo = [sid for sid in reversed(runner.graph.order) if sid in records and runner.graph.steps[sid].destroy]
        orphans = sorted(set(records) - set(runner.graph.steps))
        if not records:
            if json_out:
                run.emit("summary", status="nothing to do", target=target, undone=[], left=[], guests=[], log={})
            else:
                con.print(f"nothing to destroy: no {target} state", markup=False)
            return
        if not json_out:
            con.print(f"{len(undo)} steps will be undone ({target})" + (" in reverse order" if undo else ""), markup=False)
        _confirm(f"destroy the {target} platform", target=target, yes=yes, json_out=json_out)
        status, guests, left = "interrupted", [], []
        try:
            with run.progress:
                asyncio.run(runner.destroy())
            left = sorted(runner.state.records())
            guests = session.sandbox_guests() if target == "sandbox" else []
            status = "done" if not guests and not orphans and not left else "incomplete"
        except Exception as exc:
            status = "failed"
            run.mark_shown(exc)
            raise
        finally:
            run.finish(status, locations=session.locations(), timings=timings, undone=undo, left=left, guests=guests, orphans=orphans)
    if target == "sandbox":
        session.wipe_sandbox_world()  # what is left is the stand-ins' own "hardware": the next deploy starts bare
        if guests:
            from tierzero.errors import OperationError

            raise OperationError(f"destroy left guests behind in the sandbox Proxmox: {', '.join(guests)}",
                                 hint="a destroy step missed them: this is a tierzero bug; the sandbox world was wiped")
    if orphans or left:
        from tierzero.errors import RefusedError

        names = sorted(set(orphans) | set(left))
        raise RefusedError(f"state still holds steps not in the spec: {', '.join(names)}",
                           hint="their resources may remain; restore the spec that created them and destroy again")
