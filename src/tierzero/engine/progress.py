"""Progress for people and machines, fed by the runner's events.

- `JsonProgress`: one JSON object per line ({"event": ..., "ts": ..., ...fields}).
- `PlainProgress`: one readable line per event, for logs and pipes.
- `LiveProgress`: a Rich live view (phase, step, elapsed, waits, retries) on a terminal.
All of them collect timings; `timing_rows()` / `print_timings()` give the table at the end."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any


_FREE_TEXT = ("message", "error", "cause", "hint", "description")


@dataclass
class _Live:
    phase: str
    started: float
    wait: str = ""
    retries: int = 0


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
    """Base sink: tracks running steps and timings; subclasses render."""

    def __init__(self) -> None:
        self.redact: Callable[[str], str] = lambda text: text  # set to mask secrets in what is shown
        self.timings = Timings()
        self.running: dict[str, _Live] = {}
        self.failed: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def __call__(self, kind: str, **fields: Any) -> None:
        for key in _FREE_TEXT:  # only free text: step ids like ".../api-token" are not secrets
            if isinstance(fields.get(key), str):
                fields[key] = self.redact(fields[key])
        with self._lock:
            self._track(kind, fields)
            self.render(kind, fields)

    def _track(self, kind: str, f: dict[str, Any]) -> None:
        step = f.get("step", "")
        if kind == "step_started":
            self.running[step] = _Live(f.get("phase", ""), time.monotonic())
            self.timings.mark(f.get("phase", ""), time.monotonic())
        elif kind == "step_done":
            self.running.pop(step, None)
            self.timings.steps[step] = (f.get("phase", ""), float(f.get("elapsed", 0.0)))
            self.timings.mark(f.get("phase", ""), time.monotonic())
        elif kind in ("step_failed", "step_cancelled"):
            self.running.pop(step, None)
            if kind == "step_failed":
                self.failed[step] = f
        elif kind == "step_skipped":
            self.timings.skipped[step] = f.get("phase", "")
        elif kind == "wait" and step in self.running:
            self.running[step].wait = f.get("message", "")
        elif kind == "retry":
            self.timings.retries[step] = self.timings.retries.get(step, 0) + 1
            if step in self.running:
                self.running[step].retries += 1
        elif kind == "run_finished":
            self.timings.total = float(f.get("elapsed", 0.0))

    def render(self, kind: str, fields: dict[str, Any]) -> None:  # pragma: no cover - overridden
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
        rows = [{"phase": p, "step": s, "seconds": round(t, 3), "retries": self.timings.retries.get(s, 0)} for s, (p, t) in self.timings.steps.items()]
        return rows


class JsonProgress(Progress):
    def __init__(self, stream: IO[str] | None = None, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.stream = stream or sys.stdout
        self.clock = clock

    def render(self, kind: str, fields: dict[str, Any]) -> None:
        self.stream.write(json.dumps({"event": kind, "ts": round(self.clock(), 3), **fields}, default=str) + "\n")
        self.stream.flush()


def _line(kind: str, f: dict[str, Any]) -> str | None:
    step = f.get("step", "")
    if kind == "run_started":
        return f"run {f.get('run_id')} ({f.get('target')}): {f.get('steps')} steps, {f.get('selection')}"
    if kind == "step_started":
        return f"[{f.get('phase')}] {step}: started ({f.get('reason')})"
    if kind == "step_skipped":
        return f"[{f.get('phase')}] {step}: unchanged, skipped"
    if kind == "step_done":
        return f"[{f.get('phase')}] {step}: done in {f.get('elapsed', 0.0):.1f}s"
    if kind == "step_failed":
        return f"[{f.get('phase')}] {step}: FAILED: {f.get('error')}"
    if kind == "step_cancelled":
        return f"[{f.get('phase')}] {step}: stopped (another step failed)"
    if kind == "wait":
        return f"  {step}: waiting for {f.get('message')}"
    if kind == "retry":
        return f"  {step}: retry {f.get('attempt')} in {f.get('delay', 0.0):.1f}s after {f.get('cause')}"
    if kind == "log":
        return f"  {step}: {f.get('message')}" if step else str(f.get("message"))
    if kind == "run_finished":
        return f"run {f.get('run_id')} {f.get('status')} after {f.get('elapsed', 0.0):.1f}s"
    return None


class PlainProgress(Progress):
    def __init__(self, stream: IO[str] | None = None) -> None:
        super().__init__()
        self.stream = stream or sys.stdout

    def render(self, kind: str, fields: dict[str, Any]) -> None:
        text = _line(kind, fields)
        if text:
            self.stream.write(text + "\n")
            self.stream.flush()


class LiveProgress(Progress):
    """A Rich live table of running steps; finished lines scroll above it."""

    def __init__(self, console: Any = None) -> None:
        super().__init__()
        from rich.console import Console

        self.console = console or Console(highlight=False)
        self._live: Any = None

    def start(self) -> None:
        from rich.live import Live

        self._live = Live(self._table(), console=self.console, refresh_per_second=4, transient=True, get_renderable=self._table)
        self._live.start()

    def stop(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def _table(self) -> Any:
        from rich.table import Table

        table = Table(box=None, show_header=True, header_style="bold", expand=False)
        for col in ("phase", "step", "elapsed", "waiting for", "retries"):
            table.add_column(col)
        now = time.monotonic()
        for step, live in list(self.running.items()):
            table.add_row(live.phase, step, f"{now - live.started:.0f}s", live.wait, str(live.retries or ""))
        return table

    def render(self, kind: str, fields: dict[str, Any]) -> None:
        if kind in ("step_started", "wait", "retry"):
            return  # shown in the live table
        text = _line(kind, fields)
        if text:
            self.console.print(text, markup=False, highlight=False)


def make_progress(json_out: bool, stream: IO[str] | None = None) -> Progress:
    out = stream or sys.stdout
    if json_out:
        return JsonProgress(out)
    if out.isatty():
        return LiveProgress()
    return PlainProgress(out)


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
    for phase, seconds in progress.timings.phases().items():
        table.add_row(phase, "(phase, wall clock)", f"{seconds:.1f}", "", style="bold")
    table.add_row("", "run elapsed", f"{progress.timings.total:.1f}", "", style="bold")
    console.print(table)
