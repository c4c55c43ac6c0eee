"""Progress for people and machines, fed by the runner's events; the event schema lives here.

Renderers (`tierzero.engine.progress_views.make_progress` picks one):
- `JsonProgress`: one JSON object per line, the `--json` machine interface.
- `PlainProgress` (`tierzero.engine.progress_plain`): for logs and pipes (CI): one line per
  finished step, skipped steps folded into one line per phase, warnings always, a "still running"
  line for a long step; `verbose` adds step starts, waits, retries, narration and every command
  or API call as it is sent.
- `LiveProgress` (`tierzero.engine.progress_live`, Rich): on a terminal, one line per phase that
  updates in place, a spinner per running step with what it waits for, its retries and elapsed
  time; finished phases collapse to one line; a failed step shows its cause and remedy.
`tierzero.engine.runlog.RunLog` writes every event of a run to `.tierzero/logs/`; `Tee` feeds
several sinks at once.

## Events

A sink is called as `sink(kind, **fields)`. In `--json` output and the run log each event is one
JSON object per line, `{"event": kind, "ts": <unix seconds>, ...fields}`. Fields are only ever
added, never renamed or removed; a reader must ignore kinds and fields it does not know.

| kind | fields | meaning |
|---|---|---|
| run_started | run_id, target, selection, steps (count), command ("deploy", "destroy"), phases ({phase: [step ids in run order]}) | a run begins |
| step_started | step, phase, reason ("new", "inputs changed", "runs every time", "destroy", ...), description | a step begins |
| step_skipped | step, phase, reason ("unchanged") | finished before with the same inputs: left alone |
| step_done | step, phase, elapsed (s) | finished; its state is committed |
| step_failed | step, phase, error (the cause), hint (the remedy), elapsed (s) | the run stops |
| step_cancelled | step, phase | stopped because another step failed |
| run_finished | run_id, status ("done", "failed"), elapsed (s), ran, skipped or error | the run ends |
| log | step ("" outside a step), message, level ("info" if absent, "notice", "warn") | narration; notice and warn are always shown |
| wait | step, message | the step now waits for this |
| retry | step, attempt, cause, delay (s) | a transient failure, tried again after delay |
| call | step, phase, via (tierzero.adapters.calls.VIAS), target, request | a request sent to the outside: SSH command, API call, RPC, tofu invocation |
| summary | status ("done", "failed", "interrupted"; destroy also "incomplete", "nothing to do"), target, locations, orphans, timings, phases (s per phase), changes ({phase: {outcome: count}}), slowest, warnings, elapsed, log ({jsonl, log}), masked (strings the redactor changed); destroy adds undone, left, guests | deploy/destroy --json: the last line; always the run log's last line |

Outcomes of a step in a summary: created (reason "new"), changed (any other reason to run),
unchanged (skipped), checked (runs every time), destroyed, failed, stopped.
Every string field is passed through the redactor (`redact`) before it is shown or written."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

_IDENTIFIERS = frozenset({"step", "phase", "via", "event"})  # ids like ".../api-token" are not secrets
SHOWN_LEVELS = frozenset({"notice", "warn"})  # log levels the default view never hides
# A step retrying the very same failure this often is a warning, even if it then recovers (a rebooting
# node answers within a few tries; a storm is a part that keeps failing the same way).
RETRY_WARNING_AT = (10, 100, 1000)
OUTCOMES = ("created", "changed", "unchanged", "checked", "destroyed", "failed", "stopped")


def outcome_of(reason: str) -> str:
    return {"new": "created", "runs every time": "checked", "destroy": "destroyed"}.get(reason, "changed")


def redact_fields(value: Any, redact: Callable[[str], str], key: str = "") -> tuple[Any, int]:
    """(value with every string redacted, how many strings changed); identifiers are kept."""
    if isinstance(value, str):
        if key in _IDENTIFIERS:
            return value, 0
        shown = redact(value)
        return shown, int(shown != value)
    if isinstance(value, dict):
        out, n = {}, 0
        for k, v in value.items():
            out[k], m = redact_fields(v, redact, str(k))
            n += m
        return out, n
    if isinstance(value, (list, tuple)):
        items = [redact_fields(v, redact) for v in value]
        return [v for v, _ in items], sum(m for _, m in items)
    return value, 0


def seconds(value: float) -> str:
    """1.2s, 42s, 3m05s, 1h02m."""
    if value < 9.95:
        return f"{value:.1f}s"
    whole = round(value)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


@dataclass
class StepView:
    step: str
    phase: str
    status: str = "pending"  # pending, running, done, skipped, failed, cancelled
    reason: str = ""
    description: str = ""
    started: float = 0.0  # monotonic
    elapsed: float = 0.0
    wait: str = ""
    retries: int = 0
    last_cause: str = ""
    causes: Counter[str] = field(default_factory=Counter)  # retries by their exact cause
    error: str = ""
    hint: str = ""

    @property
    def outcome(self) -> str:
        if self.status == "skipped":
            return "unchanged"
        if self.status == "failed":
            return "failed"
        if self.status == "cancelled":
            return "stopped"
        return outcome_of(self.reason)

    @property
    def finished(self) -> bool:
        return self.status in ("done", "skipped", "failed", "cancelled")


@dataclass
class Timings:
    steps: dict[str, tuple[str, float]] = field(default_factory=dict)  # id -> (phase, seconds)
    skipped: dict[str, str] = field(default_factory=dict)  # id -> phase
    retries: dict[str, int] = field(default_factory=dict)
    total: float = 0.0
    spans: dict[str, list[float]] = field(default_factory=dict)  # phase -> [first start, last end] (monotonic)

    def phases(self) -> dict[str, float]:
        """Wall-clock seconds per phase, from its first step's start to its last step's end."""
        return {phase: end - start for phase, (start, end) in self.spans.items()}

    def mark(self, phase: str, at: float) -> None:
        span = self.spans.setdefault(phase, [at, at])
        span[0], span[1] = min(span[0], at), max(span[1], at)


class Progress:
    """Base sink: keeps what a view needs (steps by phase, timings, warnings); subclasses render."""

    def __init__(self, verbose: bool = False) -> None:
        self.verbose = verbose
        self.redact: Callable[[str], str] = lambda text: text  # set to mask secrets in what is shown
        self.timings = Timings()
        self.steps: dict[str, StepView] = {}
        self.plan: dict[str, list[str]] = {}  # phase -> step ids, from run_started
        self.run: dict[str, Any] = {}
        self.finished: dict[str, Any] = {}
        self.warnings: list[str] = []
        self.masked = 0  # strings in which the redactor masked something
        self.started = time.monotonic()
        self._lock = threading.RLock()

    # -- compatibility: what earlier callers read
    @property
    def running(self) -> dict[str, StepView]:
        return {s.step: s for s in self.steps.values() if s.status == "running"}

    @property
    def failed(self) -> dict[str, StepView]:
        return {s.step: s for s in self.steps.values() if s.status == "failed"}

    def __call__(self, kind: str, **fields: Any) -> None:
        fields, masked = redact_fields(fields, self.redact)
        with self._lock:
            self.masked += masked
            self._track(kind, fields)
            self.render(kind, fields)

    def _view(self, f: dict[str, Any]) -> StepView:
        step = str(f.get("step", ""))
        view = self.steps.get(step)
        if view is None:
            view = self.steps[step] = StepView(step, str(f.get("phase", "")))
        if f.get("phase") and not view.phase:
            view.phase = str(f["phase"])
        return view

    def _track(self, kind: str, f: dict[str, Any]) -> None:
        now = time.monotonic()
        if kind == "run_started":
            self.run, self.started = dict(f), now
            self.plan = {str(p): list(ids) for p, ids in (f.get("phases") or {}).items()}
            for phase, ids in self.plan.items():
                for sid in ids:
                    self.steps.setdefault(sid, StepView(sid, phase))
        elif kind == "step_started":
            view = self._view(f)
            view.status, view.reason, view.started, view.wait = "running", str(f.get("reason", "")), now, ""
            view.description = str(f.get("description", ""))
            self.timings.mark(view.phase, now)
        elif kind == "step_done":
            view = self._view(f)
            view.status, view.elapsed = "done", float(f.get("elapsed", 0.0))
            self.timings.steps[view.step] = (view.phase, view.elapsed)
            self.timings.mark(view.phase, now)
        elif kind == "step_failed":
            view = self._view(f)
            view.status, view.elapsed = "failed", float(f.get("elapsed", 0.0))
            view.error, view.hint = str(f.get("error", "")), str(f.get("hint", ""))
            self.timings.mark(view.phase, now)
        elif kind == "step_cancelled":
            view = self._view(f)
            view.status = "cancelled"
            view.elapsed = now - view.started if view.started else 0.0
        elif kind == "step_skipped":
            view = self._view(f)
            view.status, view.reason = "skipped", str(f.get("reason", "unchanged"))
            self.timings.skipped[view.step] = view.phase
        elif kind == "wait" and f.get("step"):
            self._view(f).wait = str(f.get("message", ""))
        elif kind == "retry" and f.get("step"):
            view = self._view(f)
            view.retries += 1
            view.last_cause = str(f.get("cause", ""))
            self.timings.retries[view.step] = view.retries
            view.causes[view.last_cause] += 1
            if view.causes[view.last_cause] in RETRY_WARNING_AT:
                self.warn(f"{view.step}: the same failure retried {view.causes[view.last_cause]} times: {view.last_cause}")
        elif kind == "log" and f.get("level") == "warn":
            where = f"{f['step']}: " if f.get("step") else ""
            self.warnings.append(f"{where}{f.get('message', '')}")
        elif kind == "run_finished":
            self.finished = dict(f)
            self.timings.total = float(f.get("elapsed", 0.0))

    def warn(self, text: str) -> None:
        """A warning the engine's events imply (a retry storm): kept, and shown by every view."""
        self.warnings.append(text)
        self.render("warning", {"message": text})

    # -- what views and summaries read
    def phase_names(self) -> list[str]:
        names = list(self.plan)
        for view in self.steps.values():
            if view.phase and view.phase not in names:
                names.append(view.phase)
        return names

    def phase_steps(self, phase: str) -> list[StepView]:
        return [v for v in self.steps.values() if v.phase == phase]

    def phase_state(self, phase: str) -> str:
        """pending, running, done, failed, or stopped (finished, some steps cancelled)."""
        views = self.phase_steps(phase)
        if any(v.status == "failed" for v in views):
            return "failed"
        if views and all(v.finished for v in views):
            return "stopped" if any(v.status == "cancelled" for v in views) else "done"
        if any(v.status != "pending" for v in views):
            return "running"
        return "pending"

    def outcomes(self, phase: str | None = None) -> Counter[str]:
        views = self.steps.values() if phase is None else self.phase_steps(phase)
        return Counter(v.outcome for v in views if v.finished)

    def phase_elapsed(self, phase: str) -> float:
        span = self.timings.spans.get(phase)
        return span[1] - span[0] if span else 0.0

    def slowest(self, n: int = 3) -> list[StepView]:
        ran = [v for v in self.steps.values() if v.status in ("done", "failed")]
        return sorted(ran, key=lambda v: v.elapsed, reverse=True)[:n]

    def elapsed(self) -> float:
        return self.timings.total or (time.monotonic() - self.started)

    def render(self, kind: str, fields: dict[str, Any]) -> None:
        pass

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def __enter__(self) -> "Progress":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def timing_rows(self) -> list[dict[str, Any]]:
        return [{"phase": p, "step": s, "seconds": round(t, 3), "retries": self.timings.retries.get(s, 0)}
                for s, (p, t) in self.timings.steps.items()]


def write_line(stream: IO[str], text: str) -> None:
    """Write and flush one line. A reader that went away (`| head`, a closed CI pipe) must not stop
    a run half-way through changing infrastructure: the rest is dropped, the run log keeps it all."""
    if getattr(stream, "closed", False):
        return
    try:
        stream.write(text + "\n")
        stream.flush()
    except (BrokenPipeError, ValueError):
        try:  # Python would fail flushing it again at exit: point the descriptor at /dev/null
            import os

            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, stream.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError):
            pass


def outcome_text(counts: Counter[str]) -> str:
    """"3 created, 1 unchanged" in the fixed order of OUTCOMES."""
    return ", ".join(f"{counts[o]} {o}" for o in OUTCOMES if counts.get(o))


class JsonProgress(Progress):
    """JSON lines; `call` events only when verbose (the run log always has them)."""

    def __init__(self, stream: IO[str] | None = None, clock: Callable[[], float] = time.time, verbose: bool = False) -> None:
        super().__init__(verbose)
        self.stream = stream or sys.stdout
        self.clock = clock

    def render(self, kind: str, fields: dict[str, Any]) -> None:
        if kind == "warning" or (kind == "call" and not self.verbose):
            return
        write_line(self.stream, json.dumps({"event": kind, "ts": round(self.clock(), 3), **fields}, default=str))


def detail_line(kind: str, f: dict[str, Any]) -> str | None:
    """The line of an event the default view leaves out (shown with -v and in the readable log)."""
    step = f.get("step", "")
    where = f"{step}: " if step else ""
    if kind == "step_started":
        return f"[{f.get('phase')}] {step}: started ({f.get('reason')})"
    if kind == "wait":
        return f"  {where}waiting for {f.get('message')}"
    if kind == "retry":
        return f"  {where}retry {f.get('attempt')} in {float(f.get('delay', 0.0)):.1f}s after {f.get('cause')}"
    if kind == "call":
        return f"  {where}{f.get('via')} {f.get('target')}: {f.get('request')}"
    if kind == "log":
        return f"  {where}{f.get('message')}"
    return None


class Tee:
    """One sink feeding several (a view and the run log); `redact` is set on each."""

    def __init__(self, *sinks: Any) -> None:
        self.sinks = [s for s in sinks if s is not None]

    def __call__(self, kind: str, **fields: Any) -> None:
        for sink in self.sinks:
            sink(kind, **dict(fields))

    @property
    def redact(self) -> Callable[[str], str]:
        return next((s.redact for s in self.sinks if hasattr(s, "redact")), lambda text: text)

    @redact.setter
    def redact(self, value: Callable[[str], str]) -> None:
        for sink in self.sinks:
            if hasattr(sink, "redact"):
                sink.redact = value


def print_timings(progress: Progress, console: Any) -> None:
    from rich.table import Table

    if not progress.timings.steps:
        return
    table = Table(title="timings", box=None, header_style="bold")
    table.add_column("phase")
    table.add_column("step")
    table.add_column("seconds", justify="right")
    table.add_column("retries", justify="right")
    for row in progress.timing_rows():
        table.add_row(row["phase"], row["step"], f"{row['seconds']:.1f}", str(row["retries"] or ""))
    for phase, secs in progress.timings.phases().items():
        table.add_row(phase, "(phase, wall clock)", f"{secs:.1f}", "", style="bold")
    table.add_row("", "run elapsed", f"{progress.timings.total:.1f}", "", style="bold")
    console.print(table)
