"""The plain view of a run, for logs and pipes (CI): one line per finished step, the skipped steps
of a phase folded into one line, warnings and notices always, and a "still running" line when a
step runs long, so a CI log never goes quiet. `verbose` adds step starts, waits, retries,
narration and every command or API call as it is sent. Event schema: `tierzero.engine.progress`."""

from __future__ import annotations

import sys
import threading
import time
from typing import IO, Any

from tierzero.engine.progress import SHOWN_LEVELS, Progress, StepView, detail_line, seconds, write_line


def _skip_line(phase: str, skipped: list[StepView]) -> str:
    if len(skipped) == 1:
        return f"[{phase}] {skipped[0].step}: unchanged"
    return f"[{phase}] {len(skipped)} steps unchanged"


class PlainProgress(Progress):
    """Lines for logs and pipes. `heartbeat`: seconds a step runs before a "still running" line
    (then at doubling intervals, at most every 5 minutes); 0 turns it off."""

    def __init__(self, stream: IO[str] | None = None, verbose: bool = False, heartbeat: float = 30.0) -> None:
        super().__init__(verbose)
        self.stream = stream or sys.stdout
        self.heartbeat = heartbeat
        self._beats: dict[str, tuple[float, float]] = {}  # step -> (next beat at, interval)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._folded: set[str] = set()

    def _print(self, text: str) -> None:
        write_line(self.stream, text)

    def render(self, kind: str, f: dict[str, Any]) -> None:
        step, phase = f.get("step", ""), f.get("phase", "")
        if kind == "run_started":
            phases = f" in {len(self.plan)} phases" if self.plan else ""
            self._print(f"{f.get('command', 'run')} ({f.get('target')}), run {f.get('run_id')}: {f.get('steps')} steps{phases}")
        elif kind == "step_done":
            view = self.steps[step]
            retried = f" after {view.retries} retries" if view.retries else ""
            self._print(f"[{phase}] {step}: {view.outcome} in {seconds(view.elapsed)}{retried}")
        elif kind == "step_failed":
            self._print(f"[{phase}] {step}: FAILED after {seconds(float(f.get('elapsed', 0.0)))}: {f.get('error')}")
            if f.get("hint"):
                self._print(f"  remedy: {f['hint']}")
        elif kind == "step_cancelled":
            self._print(f"[{phase}] {step}: stopped (another step failed)")
        elif kind == "step_skipped" and not self.plan:
            self._print(f"[{phase}] {step}: unchanged")
        elif kind == "warning" or (kind == "log" and f.get("level") == "warn"):
            self._print(f"warning: {step + ': ' if step else ''}{f.get('message')}")
        elif kind == "log" and f.get("level") in SHOWN_LEVELS:
            self._print(f"{step + ': ' if step else ''}{f.get('message')}")
        elif self.verbose:
            line = detail_line(kind, f)
            if line:
                self._print(line)
        if kind in ("step_done", "step_failed", "step_cancelled", "step_skipped") and self.plan:
            self._fold(phase)

    def _fold(self, phase: str) -> None:
        """Once a phase has finished, one line for all its skipped steps."""
        if phase in self._folded or self.phase_state(phase) in ("pending", "running"):
            return
        self._folded.add(phase)
        skipped = [v for v in self.phase_steps(phase) if v.status == "skipped"]
        if skipped:
            self._print(_skip_line(phase, skipped))

    def start(self) -> None:
        if self.heartbeat > 0 and self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._beat, name="tierzero-heartbeat", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None

    def _beat(self) -> None:
        while not self._stop.wait(min(1.0, self.heartbeat)):
            self.beat(time.monotonic())

    def beat(self, now: float) -> None:
        """Print "still running" for every step past its next beat."""
        with self._lock:
            for view in list(self.running.values()):
                due, interval = self._beats.get(view.step, (view.started + self.heartbeat, self.heartbeat))
                if now < due:
                    continue
                interval = min(interval * 2, 300.0)
                self._beats[view.step] = (now + interval, interval)
                parts = [f"[{view.phase}] {view.step}: still running after {seconds(now - view.started)}"]
                if view.wait:
                    parts.append(f"waiting for {view.wait}")
                if view.retries:
                    parts.append(f"{view.retries} retries, last: {view.last_cause}")
                self._print("; ".join(parts))
