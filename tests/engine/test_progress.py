from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from tierzero.engine.progress import JsonProgress, PlainProgress, print_timings
from tierzero.engine.runner import StepFailed
from tierzero.engine.step import Step

from engine_helpers import Ledger, diamond, make_runner


async def test_json_events_stream(tmp_path: Path) -> None:
    out = io.StringIO()
    progress = JsonProgress(out)
    await make_runner(tmp_path, diamond(Ledger(tmp_path / "l")), emit=progress).run()
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "run_started" and kinds[-1] == "run_finished"
    assert kinds.count("step_started") == 6 and kinds.count("step_done") == 6
    assert all("ts" in e for e in events)
    done = [e for e in events if e["event"] == "step_done"]
    assert {e["step"] for e in done} == {s.id for s in diamond(Ledger(tmp_path / "l"))}
    assert set(progress.timings.phases()) == {"setup", "cloud", "platform"}


async def test_plain_lines_are_terse_by_default_and_detailed_with_verbose(tmp_path: Path) -> None:
    async def wait_and_log(ctx):
        ctx.wait("the API")
        ctx.log("hello")
        ctx.log("no /dev/kvm: software emulation", level="warn")
        return {}

    texts = {}
    for verbose in (False, True):
        out = io.StringIO()
        progress = PlainProgress(out, verbose=verbose)
        await make_runner(tmp_path / str(verbose), [Step("cloud/x", "cloud", "", wait_and_log)], emit=progress).run()  # type: ignore[arg-type]
        texts[verbose] = out.getvalue()
    terse, detailed = texts[False], texts[True]
    assert "[cloud] cloud/x: created in" in terse and "warning: cloud/x: no /dev/kvm: software emulation" in terse
    assert "started" not in terse and "waiting for" not in terse and "hello" not in terse
    assert "[cloud] cloud/x: started (new)" in detailed and "waiting for the API" in detailed and "hello" in detailed
    assert "warning: cloud/x: no /dev/kvm" in detailed
    from rich.console import Console

    buf = io.StringIO()
    print_timings(progress, Console(file=buf, width=120))
    assert "cloud/x" in buf.getvalue() and "run elapsed" in buf.getvalue()


async def test_failure_event_has_error_and_hint(tmp_path: Path) -> None:
    async def boom(ctx):
        raise ValueError("no capacity")

    out = io.StringIO()
    with pytest.raises(StepFailed):
        await make_runner(tmp_path, [Step("cloud/x", "cloud", "", boom)], emit=JsonProgress(out)).run()  # type: ignore[arg-type]
    failed = [json.loads(line) for line in out.getvalue().splitlines() if '"step_failed"' in line][0]
    assert failed["step"] == "cloud/x" and "no capacity" in failed["error"] and failed["hint"]


async def test_live_view_shows_the_running_step_with_its_wait_and_retries(tmp_path: Path) -> None:
    from rich.console import Console

    from tierzero.engine.progress import LiveProgress

    progress = LiveProgress(Console(file=io.StringIO(), force_terminal=True, width=120))
    seen: list[str] = []

    async def slow(ctx):
        ctx.wait("Ceph HEALTH_OK")
        ctx.retry(1, "HEALTH_WARN", 0.0)
        screen = Console(file=io.StringIO(), width=120, record=True)
        screen.print(progress.renderable())
        seen.append(screen.export_text())
        return {}

    with progress:
        await make_runner(tmp_path, [Step("hypervisors/ceph", "hypervisors", "", slow)], emit=progress).run()  # type: ignore[arg-type]
    running = [line for line in seen[0].splitlines() if "hypervisors/ceph" in line]
    assert len(running) == 1 and "waiting for Ceph HEALTH_OK" in running[0] and "retry 1: HEALTH_WARN" in running[0]
    assert progress.timings.retries["hypervisors/ceph"] == 1
    final = Console(file=io.StringIO(), width=120, record=True)
    final.print(progress.renderable())
    lines = final.export_text().splitlines()
    assert len(lines) == 1 and lines[0].startswith("✓ hypervisors") and "1 created" in lines[0]  # collapsed to one line


async def test_secrets_are_masked_in_events_and_errors(tmp_path: Path) -> None:
    async def leaky(ctx):
        ctx.log("token is s3cr3t-value")
        raise RuntimeError("login failed with s3cr3t-value")

    out = io.StringIO()
    progress = JsonProgress(out)
    progress.redact = lambda text: text.replace("s3cr3t-value", "***")
    runner = make_runner(tmp_path, [Step("services/x", "services", "", leaky)], emit=progress)  # type: ignore[arg-type]
    runner.redact = progress.redact
    with pytest.raises(StepFailed) as err:
        await runner.run()
    assert "s3cr3t" not in out.getvalue() and "s3cr3t" not in err.value.message
    assert "s3cr3t" not in (runner.state.get("services/x").last_error or "")
