"""The terminal view of a run (Rich): one line per phase, updated in place.

    ✓ setup        3 created                                   0.5s
    ⠹ platform     5/8                                          1.2s
        ⠹ platform/main/talos  waiting for Talos API on every node of main · retry 3: … · 1s
    · gitops       3 steps

A finished phase collapses to its one line; a failed step stays under its phase with its cause
and remedy. Warnings and notices (and with `verbose` every command and API call) print above
the live lines and stay in the scrollback. Imported only when a terminal is attached."""

from __future__ import annotations

import time
from typing import Any, cast

from rich.console import Console, Group
from rich.live import Live
from rich.padding import Padding
from rich.spinner import Spinner
from rich.text import Text

from tierzero.engine.progress import SHOWN_LEVELS, Progress, StepView, detail_line, outcome_text, seconds

MARKS = {"done": ("✓", "green"), "failed": ("✗", "bold red"), "stopped": ("!", "yellow"), "pending": ("·", "dim")}
NAME_WIDTH = 12


class LiveProgress(Progress):
    shows_phases = True  # the run summary need not repeat one line per phase
    def __init__(self, console: Console | None = None, *, verbose: bool = False, width: int | None = None) -> None:
        super().__init__(verbose)
        self.console = console or Console(highlight=False, width=width)
        self._live: Live | None = None
        self._spinner = Spinner("dots")

    def start(self) -> None:
        self._live = Live(console=self.console, refresh_per_second=8, transient=False, get_renderable=self.renderable,
                          redirect_stdout=False, redirect_stderr=False)
        self._live.start()

    def stop(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    # -- above the live lines
    def render(self, kind: str, fields: dict[str, Any]) -> None:
        step = fields.get("step", "")
        where = f"{step}: " if step else ""
        if kind == "warning" or (kind == "log" and fields.get("level") == "warn"):
            self.console.print(Text(f"warning: {where}{fields.get('message')}", style="yellow"))
        elif kind == "log" and fields.get("level") in SHOWN_LEVELS:
            self.console.print(Text(f"{where}{fields.get('message')}"))
        elif self.verbose and kind != "step_started":
            line = detail_line(kind, fields)
            if line:
                self.console.print(Text(line, style="dim"))

    # -- the live lines
    def renderable(self) -> Group:
        with self._lock:
            now = time.monotonic()
            lines: list[Any] = []
            for phase in self.phase_names():
                lines.extend(self._phase_lines(phase, now))
            return Group(*lines)

    def _phase_lines(self, phase: str, now: float) -> list[Any]:
        state = self.phase_state(phase)
        views = self.phase_steps(phase)
        name = phase.ljust(NAME_WIDTH)
        if state == "pending":
            return [Text.assemble(("· ", "dim"), (name, "dim"), (f" {len(views)} step{'s' if len(views) != 1 else ''}", "dim"))]
        if state == "running":
            finished = sum(v.finished for v in views)
            span = self.timings.spans.get(phase)
            elapsed = now - span[0] if span else 0.0
            head = cast(Text, self._spinner.render(now))  # rich's Spinner.render returns Text
            head.append(f" {name} ", style="bold")
            head.append(f"{finished}/{len(views)}")
            head.append(f"  {seconds(elapsed)}", style="dim")
            return [head] + [self._running_line(v, now) for v in views if v.status == "running"] + self._failures(views)
        mark, style = MARKS[state]
        line = Text.assemble((f"{mark} ", style), (name, "bold" if state != "done" else ""), " ", outcome_text(self.outcomes(phase)))
        retries = sum(v.retries for v in views)
        line.append(f"  {seconds(self.phase_elapsed(phase))}" + (f", {retries} retries" if retries else ""), style="dim")
        return [line] + self._failures(views)

    def _failures(self, views: list[StepView]) -> list[Any]:
        """The first failed step in full; more failures with the same remedy one line each."""
        failed = [v for v in views if v.status == "failed"]
        out: list[Any] = []
        for view in failed:
            if out and view.hint == failed[0].hint:
                line = Text.assemble(("    ✗ ", "bold red"), (view.step, "bold"), ": ", (view.error, "red"))
                line.no_wrap, line.overflow = True, "ellipsis"
                out.append(line)
            else:
                out.append(self._failed_line(view))
        return out

    def _running_line(self, view: StepView, now: float) -> Text:
        line = Text("    ")
        line.append_text(cast(Text, self._spinner.render(now)))
        line.append(f" {view.step}")
        line.append(f"  {seconds(now - view.started)}", style="dim")
        if view.wait:
            line.append(f"  waiting for {view.wait}", style="cyan")
        elif view.description:
            line.append(f"  {view.description}", style="dim")
        if view.retries:
            line.append(f" · retry {view.retries}: {view.last_cause}", style="yellow")
        line.no_wrap, line.overflow = True, "ellipsis"
        return line

    @staticmethod
    def _failed_line(view: StepView) -> Padding:
        """The cause and the remedy, wrapped under the step (never cut: they are what to do next)."""
        line = Text.assemble(("✗ ", "bold red"), (view.step, "bold"), f" after {seconds(view.elapsed)}: ", (view.error, "red"))
        if view.hint:
            line.append("\nremedy: ", style="bold")
            line.append(view.hint)
        return Padding(line, (0, 0, 0, 4))
