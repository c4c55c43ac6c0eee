"""Runs the step graph: ready steps concurrently (bounded), finished steps with unchanged
inputs skipped, a step left `running` by a killed run re-run, and the first failure stops
the run with the step id, the cause and a remedy.

Events (schema: `tierzero.engine.progress`): run_started, step_started, step_skipped, step_done,
step_failed, step_cancelled, run_finished, plus log/wait/retry from inside steps and `call` for
each request an adapter sends while the step runs (`tierzero.adapters.calls`). A step's
`step_done` event is emitted only after its state is committed."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

from tierzero.adapters import calls
from tierzero.adapters.redact import process_redactor
from tierzero.engine.dag import Graph, build
from tierzero.engine.state import StateStore, StepRecord, fingerprint
from tierzero.engine.step import EventSink, Step, StepContext, frozen
from tierzero.errors import InputError, OperationError, TierzeroError

if TYPE_CHECKING:
    from tierzero.adapters.connections import Connections
    from tierzero.spec.models import Platform
    from tierzero.workspace import Workspace

REMEDY = "fix the cause, then run the same command again: finished steps are skipped and this one is retried"


class StepFailed(OperationError):
    def __init__(self, step_id: str, cause: str, hint: str | None = None) -> None:
        super().__init__(f"step {step_id} failed: {cause}", hint=hint or REMEDY)
        self.step_id = step_id
        self.cause = cause


@dataclass(frozen=True)
class Selection:
    only: str | None = None
    start: str | None = None
    until: str | None = None

    def describe(self) -> str:
        parts = [f"{k}={v}" for k, v in (("only", self.only), ("from", self.start), ("until", self.until)) if v]
        return " ".join(parts) or "all"


@dataclass(frozen=True)
class PlanItem:
    step_id: str
    phase: str
    action: str  # "run" or "skip"
    reason: str
    description: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"step": self.step_id, "phase": self.phase, "action": self.action, "reason": self.reason, "description": self.description}


@dataclass
class RunResult:
    run_id: int
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    durations: dict[str, float] = field(default_factory=dict)
    elapsed: float = 0.0


def _cause(exc: BaseException) -> tuple[str, str | None]:
    if isinstance(exc, TierzeroError):
        return exc.message, exc.hint
    text = str(exc).strip()
    return (f"{type(exc).__name__}: {text}" if text else type(exc).__name__), None


class Runner:
    def __init__(
        self,
        steps: Sequence[Step[Any]],
        *,
        spec: Platform,
        workspace: Workspace,
        target: str,
        connections: Connections,
        secrets: Any,
        state: StateStore,
        emit: EventSink | None = None,
        concurrency: int = 8,
        graph: Graph | None = None,
        redact: Callable[[str], str] | None = None,
    ) -> None:
        self.graph = graph or build(steps)
        self.spec, self.workspace, self.target = spec, workspace, target
        self.connections, self.secrets, self.state = connections, secrets, state
        self.emit: EventSink = emit if emit is not None else (lambda kind, **f: None)
        self.concurrency = max(1, concurrency)
        self.outputs: dict[str, Mapping[str, Any]] = {}
        self.redact = redact or process_redactor().redact  # errors are stored and shown: mask secrets in them
        # Fingerprints `plan` computed; `run` reuses them until its first step starts (until then
        # the world they were computed from is unchanged). Some inputs render configs: not free.
        self._planned: dict[str, tuple[str, Any] | None] = {}  # (fingerprint, inputs value)
        self._started_any = False
        self._previous: dict[str, Mapping[str, Any]] = {}  # outputs of each step's last finished run

    def _context(self, step_id: str) -> StepContext:
        return StepContext(
            spec=self.spec, workspace=self.workspace, target=self.target,  # type: ignore[arg-type]
            connections=self.connections, secrets=self.secrets, outputs=self.outputs,
            step_id=step_id, emit=self.emit, previous=self._previous.get(step_id),
        )

    def context_from_state(self, step_id: str) -> StepContext:
        """A context holding the outputs of every finished step, for reads outside a run."""
        self._load_outputs(self.state.records())
        return self._context(step_id)

    def _load_outputs(self, records: Mapping[str, StepRecord]) -> None:
        # A step left running or failed keeps the outputs of its last finished run in the state.
        self._previous = {sid: r.outputs for sid, r in records.items() if r.outputs}
        self.outputs.clear()
        self.outputs.update({sid: r.outputs for sid, r in records.items() if r.status == "done" and sid in self.graph.steps})
        for out in self.outputs.values():
            self._publish_endpoints(out)

    def _publish_endpoints(self, outputs: Mapping[str, Any]) -> None:
        """A step may publish endpoints it learned (e.g. instance addresses) as outputs
        {"endpoints": [{"kind", "name", "host", "port", "scheme"?, "extra"?}]}; a real run adds
        them to the connections. A sandbox adds those its network routes (`Connections.route`:
        where that address is played by a stand-in) and keeps its stand-ins for the rest."""
        conns = self.connections
        if conns is None or not isinstance(outputs.get("endpoints"), list):
            return
        if self.target != "real" and conns.route is None:
            return
        from tierzero.adapters.connections import Endpoint

        for ep in outputs["endpoints"]:
            if isinstance(ep, Mapping) and {"kind", "name", "host", "port"} <= set(ep):
                learned = Endpoint(
                    str(ep["host"]), int(ep["port"]), str(ep.get("scheme", "https")), ep.get("verify", True), dict(ep.get("extra", {})))
                endpoint = learned if self.target == "real" or conns.route is None else conns.route(learned)
                if endpoint is not None:
                    conns.add(str(ep["kind"]), str(ep["name"]), endpoint)

    def _check_outside(self, selected: list[str], records: Mapping[str, StepRecord]) -> None:
        chosen = set(selected)
        for sid in selected:
            for dep in self.graph.after[sid]:
                rec = records.get(dep)
                if dep not in chosen and (rec is None or rec.status != "done"):
                    raise InputError(
                        f"step {sid} comes after {dep} ({self.graph.phase_of(dep)}), which has not finished",
                        hint=f"run the {self.graph.phase_of(dep)} phase first, or drop --only/--from",
                    )

    def _inputs(self, step: Step[Any]) -> tuple[str, Any]:
        """The step's inputs value and its fingerprint."""
        value = step.inputs(self._context(step.id))
        return fingerprint(value), frozen(value)

    @staticmethod
    def _rerun_reason(rec: StepRecord | None, fp: str | None, always: bool = False) -> str | None:
        """Why a step must run, or None to skip it."""
        if always:
            return "runs every time"
        if rec is None:
            return "new"
        if rec.status == "failed":
            return "failed last time"
        if rec.status == "running":
            return "interrupted last time"
        if rec.status != "done":
            return "not finished"
        if fp is None or rec.fingerprint != fp:
            return "inputs changed"
        return None

    # -- dry run
    def plan(self, selection: Selection = Selection()) -> list[PlanItem]:
        """What `run` would do, and why."""
        selected = self.graph.select(selection.only, selection.start, selection.until)
        records = self.state.records()
        self._check_outside(selected, records)
        self._load_outputs(records)
        changing: set[str] = set()
        items: list[PlanItem] = []
        for sid in selected:
            step = self.graph.steps[sid]
            upstream_changing = any(n in changing for n in self.graph.explicit[sid])
            try:
                planned: tuple[str, Any] | None = self._inputs(step)
            except Exception:  # noqa: BLE001 - inputs may read outputs that do not exist yet
                planned = None
            self._planned[sid] = planned
            fp = planned[0] if planned is not None else None
            reason = self._rerun_reason(records.get(sid), fp, step.always)
            if reason == "inputs changed" and fp is None and upstream_changing:
                reason = "downstream of change"
            if reason is None and upstream_changing:
                reason = "downstream of change"
            if reason:
                changing.add(sid)
            items.append(PlanItem(sid, step.phase, "run" if reason else "skip", reason or "unchanged", step.description))
        return items

    # -- run
    async def run(self, selection: Selection = Selection(), command: str = "deploy") -> RunResult:
        """Run the selected phases."""
        selected = self.graph.select(selection.only, selection.start, selection.until)
        records = self.state.records()
        self._check_outside(selected, records)
        self._load_outputs(records)
        self._started_any = False
        run_id = self.state.start_run(command, selection.describe())
        result = RunResult(run_id)
        started = time.monotonic()
        self.emit("run_started", run_id=run_id, target=self.target, selection=selection.describe(), steps=len(selected),
                  command=command, phases=self._phases(selected))
        try:
            await self._schedule(selected, records, result, run_id)
        except BaseException as exc:
            cause = self.redact(exc.message if isinstance(exc, TierzeroError) else type(exc).__name__)
            self.state.finish_run(run_id, "failed", cause)
            result.elapsed = time.monotonic() - started
            self.emit("run_finished", run_id=run_id, status="failed", elapsed=result.elapsed, error=cause)
            raise
        finally:
            self._planned.clear()
        self.state.finish_run(run_id, "done")
        result.elapsed = time.monotonic() - started
        self.emit("run_finished", run_id=run_id, status="done", elapsed=result.elapsed, ran=len(result.ran), skipped=len(result.skipped))
        return result

    def _phases(self, step_ids: Sequence[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for sid in step_ids:
            out.setdefault(self.graph.phase_of(sid), []).append(sid)
        return out

    def _bind_calls(self, sid: str, phase: str) -> None:
        """Adapter requests made from now on in this task (and its threads) are this step's `call` events."""
        calls.bind(lambda **f: self.emit("call", step=sid, phase=phase, **f))

    async def _schedule(self, selected: list[str], records: Mapping[str, StepRecord], result: RunResult, run_id: int) -> None:
        chosen = set(selected)
        waiting = {sid: {d for d in self.graph.after[sid] if d in chosen} for sid in selected}
        readers: dict[str, list[str]] = {sid: [] for sid in selected}
        for sid, deps in waiting.items():
            for dep in deps:
                readers[dep].append(sid)
        semaphore = asyncio.Semaphore(self.concurrency)
        position = {sid: i for i, sid in enumerate(selected)}
        ready = [sid for sid in selected if not waiting[sid]]
        tasks: dict[asyncio.Task[None], str] = {}
        while ready or tasks:
            for sid in ready:
                tasks[asyncio.create_task(self._execute(sid, records.get(sid), semaphore, result, run_id))] = sid
            ready = []
            try:
                finished, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:  # interrupted (Ctrl-C): leave running steps as pending
                await self._cancel(tasks)
                raise
            failure: BaseException | None = None
            for task in finished:
                sid = tasks.pop(task)
                if task.exception() is not None:
                    failure = failure or task.exception()
                    continue
                for reader in readers[sid]:
                    waiting[reader].discard(sid)
                    if not waiting[reader]:
                        ready.append(reader)
            if failure is not None:
                await self._cancel(tasks)
                raise failure
            ready.sort(key=position.__getitem__)

    async def _cancel(self, tasks: dict[asyncio.Task[None], str]) -> None:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _execute(self, sid: str, rec: StepRecord | None, semaphore: asyncio.Semaphore, result: RunResult, run_id: int) -> None:
        step = self.graph.steps[sid]
        try:
            planned = None if self._started_any else self._planned.get(sid)
            fp, value = planned if planned is not None else self._inputs(step)
        except Exception as exc:  # noqa: BLE001
            cause, hint = _cause(exc)
            raise StepFailed(sid, f"could not compute its inputs: {self.redact(cause)}", hint) from exc
        reason = self._rerun_reason(rec, fp, step.always)
        if reason is None and rec is not None:
            self.outputs[sid] = rec.outputs  # already published by _load_outputs
            result.skipped.append(sid)
            self.emit("step_skipped", step=sid, phase=step.phase, reason="unchanged")
            return
        async with semaphore:
            self._started_any = True
            self.state.mark_running(sid, step.phase, fp, run_id)
            self.emit("step_started", step=sid, phase=step.phase, reason=reason, description=step.description)
            self._bind_calls(sid, step.phase)  # this task's own context: no reset needed
            t0 = time.monotonic()
            try:
                produced = await step.run(self._context(sid), value)
                outputs = dict(produced or {})
            except asyncio.CancelledError:
                self.state.mark_failed(sid, "cancelled: another step failed", status="pending")
                self.emit("step_cancelled", step=sid, phase=step.phase)
                raise
            except Exception as exc:  # noqa: BLE001 - every failure becomes a StepFailed
                cause, hint = _cause(exc)
                self._fail(sid, step.phase, self.redact(cause), hint, t0, exc)
            try:
                json.dumps(outputs)  # the state stores them as JSON: a step's bug, told as such
            except (TypeError, ValueError) as exc:
                self._fail(sid, step.phase, self.redact(f"its outputs are not JSON-able ({exc})"), None, t0, exc)
            self.state.mark_done(sid, outputs)
            self.outputs[sid] = outputs
            self._publish_endpoints(outputs)
            elapsed = time.monotonic() - t0
            result.ran.append(sid)
            result.durations[sid] = elapsed
            self.emit("step_done", step=sid, phase=step.phase, elapsed=elapsed)

    def _fail(self, sid: str, phase: str, cause: str, hint: str | None, t0: float, exc: BaseException) -> NoReturn:
        self.state.mark_failed(sid, cause)
        self.emit("step_failed", step=sid, phase=phase, error=cause, hint=hint or REMEDY, elapsed=time.monotonic() - t0)
        raise StepFailed(sid, cause, hint) from exc

    # -- destroy
    async def destroy(self, on_step: Callable[[str], None] | None = None) -> list[str]:
        """Undo every recorded step in reverse order; forget the state of the rest."""
        records = self.state.records()
        self._load_outputs(records)
        run_id = self.state.start_run("destroy", "all")
        undone: list[str] = []
        undo_order = [sid for sid in reversed(self.graph.order) if sid in records]
        self.emit("run_started", run_id=run_id, target=self.target, selection="destroy", steps=len(records), command="destroy",
                  phases=self._phases([sid for sid in undo_order if self.graph.steps[sid].destroy is not None]))
        started = time.monotonic()
        token = calls.bind(None)
        try:
            await self._undo(undo_order, undone, run_id, on_step)
        except BaseException as exc:
            cause = self.redact(exc.message if isinstance(exc, TierzeroError) else type(exc).__name__)
            self.state.finish_run(run_id, "failed", cause)
            self.emit("run_finished", run_id=run_id, status="failed", elapsed=time.monotonic() - started, error=cause)
            raise
        finally:
            calls.unbind(token)
        self.state.finish_run(run_id, "done")
        self.emit("run_finished", run_id=run_id, status="done", elapsed=time.monotonic() - started, ran=len(undone), skipped=0)
        return undone

    async def _undo(self, undo_order: list[str], undone: list[str], run_id: int, on_step: Callable[[str], None] | None) -> None:
        for sid in undo_order:
            step = self.graph.steps[sid]
            if step.destroy is not None:
                if on_step:
                    on_step(sid)
                self.emit("step_started", step=sid, phase=step.phase, reason="destroy", description=step.description)
                self._bind_calls(sid, step.phase)
                t0 = time.monotonic()
                try:
                    await step.destroy(self._context(sid))
                except Exception as exc:  # noqa: BLE001
                    cause, hint = _cause(exc)
                    cause = self.redact(cause)
                    self.state.finish_run(run_id, "failed", cause)
                    self.emit("step_failed", step=sid, phase=step.phase, error=cause, hint=hint or REMEDY, elapsed=time.monotonic() - t0)
                    raise StepFailed(sid, f"destroy: {cause}", hint or "fix the cause and run destroy again; undone steps stay undone") from exc
                self.emit("step_done", step=sid, phase=step.phase, elapsed=time.monotonic() - t0)
                undone.append(sid)
            self.state.forget(sid)
            self.outputs.pop(sid, None)
