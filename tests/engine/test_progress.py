from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from tierzero.engine.progress import JsonProgress, print_timings
from tierzero.engine.progress_plain import PlainProgress
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
    async def wait_and_log(ctx, _inputs=None):
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
    async def boom(ctx, _inputs=None):
        raise ValueError("no capacity")

    out = io.StringIO()
    with pytest.raises(StepFailed):
        await make_runner(tmp_path, [Step("cloud/x", "cloud", "", boom)], emit=JsonProgress(out)).run()  # type: ignore[arg-type]
    failed = [json.loads(line) for line in out.getvalue().splitlines() if '"step_failed"' in line][0]
    assert failed["step"] == "cloud/x" and "no capacity" in failed["error"] and failed["hint"]


async def test_live_view_shows_the_running_step_with_its_wait_and_retries(tmp_path: Path) -> None:
    from rich.console import Console

    from tierzero.engine.progress_live import LiveProgress

    progress = LiveProgress(Console(file=io.StringIO(), force_terminal=True, width=120))
    seen: list[str] = []

    async def slow(ctx, _inputs=None):
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
    async def leaky(ctx, _inputs=None):
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


def _feed(progress, events: list[tuple[str, dict]]) -> None:
    for kind, fields in events:
        progress(kind, **fields)


PLAN = {"setup": ["setup/a", "setup/b"], "platform": ["platform/vm", "platform/talos"], "validate": ["validate/checks"]}


def _run_with_failure() -> list[tuple[str, dict]]:
    return [
        ("run_started", {"run_id": 7, "target": "sandbox", "selection": "all", "steps": 5, "command": "deploy", "phases": PLAN}),
        ("step_skipped", {"step": "setup/a", "phase": "setup", "reason": "unchanged"}),
        ("step_skipped", {"step": "setup/b", "phase": "setup", "reason": "unchanged"}),
        ("step_started", {"step": "platform/vm", "phase": "platform", "reason": "new", "description": "VM"}),
        ("step_started", {"step": "platform/talos", "phase": "platform", "reason": "inputs changed", "description": "configs"}),
        ("call", {"step": "platform/vm", "phase": "platform", "via": "proxmox", "target": "pve1", "request": "POST /nodes/pve1/qemu"}),
        ("step_failed", {"step": "platform/vm", "phase": "platform", "error": "HTTP 403: Permission check failed",
                         "hint": "give the token VM.Allocate", "elapsed": 0.4}),
        ("step_cancelled", {"step": "platform/talos", "phase": "platform"}),
        ("run_finished", {"run_id": 7, "status": "failed", "elapsed": 1.5, "error": "step platform/vm failed"}),
    ]


def test_plain_view_folds_skipped_steps_and_shows_a_failure_with_its_remedy() -> None:
    from tierzero.engine.progress_plain import PlainProgress

    out = io.StringIO()
    _feed(PlainProgress(out, heartbeat=0), _run_with_failure())
    assert out.getvalue().splitlines() == [
        "deploy (sandbox), run 7: 5 steps in 3 phases",
        "[setup] 2 steps unchanged",
        "[platform] platform/vm: FAILED after 0.4s: HTTP 403: Permission check failed",
        "  remedy: give the token VM.Allocate",
        "[platform] platform/talos: stopped (another step failed)",
    ]


def test_live_view_keeps_the_failed_step_with_cause_and_remedy_and_the_phases_not_reached() -> None:
    from rich.console import Console

    from tierzero.engine.progress_live import LiveProgress

    progress = LiveProgress(Console(file=io.StringIO(), force_terminal=True, width=100))
    _feed(progress, _run_with_failure())
    screen = Console(file=io.StringIO(), width=100, record=True)
    screen.print(progress.renderable())
    assert [line.rstrip() for line in screen.export_text().splitlines()] == [
        "✓ setup        2 unchanged  0.0s",
        "✗ platform     1 failed, 1 stopped  0.0s",
        "    ✗ platform/vm after 0.4s: HTTP 403: Permission check failed",
        "    remedy: give the token VM.Allocate",
        "· validate     1 step",
    ]


def test_a_long_step_says_it_is_still_running_at_growing_intervals() -> None:
    from tierzero.engine.progress_plain import PlainProgress

    out = io.StringIO()
    progress = PlainProgress(out, heartbeat=30)
    _feed(progress, [("run_started", {"run_id": 1, "target": "real", "steps": 1, "command": "deploy", "phases": {"cloud": ["cloud/oci"]}}),
                     ("step_started", {"step": "cloud/oci", "phase": "cloud", "reason": "new"}),
                     ("wait", {"step": "cloud/oci", "message": "A1 capacity"}),
                     ("retry", {"step": "cloud/oci", "attempt": 1, "cause": "Out of host capacity", "delay": 30.0})])
    started = progress.steps["cloud/oci"].started
    for t in (10, 31, 45, 92, 150, 220):
        progress.beat(started + t)
    beats = out.getvalue().splitlines()[1:]
    assert [b.split("after ")[1].split(";")[0] for b in beats] == ["31s", "1m32s", "3m40s"]  # 30 s, then 60 s, then 120 s later
    assert beats[0] == "[cloud] cloud/oci: still running after 31s; waiting for A1 capacity; 1 retries, last: Out of host capacity"


def test_a_storm_of_the_same_failure_is_a_warning_but_a_rebooting_node_is_not() -> None:
    from tierzero.engine.progress_plain import PlainProgress

    out = io.StringIO()
    progress = PlainProgress(out, heartbeat=0)
    progress("step_started", step="platform/talos", phase="platform", reason="new")
    for i in range(12):  # three nodes, each not answering a few times while they reboot
        progress("retry", step="platform/talos", attempt=i, cause=f"Talos API of cp-{i % 3} not answering yet", delay=0.1)
    assert "warning" not in out.getvalue() and not progress.warnings
    for i in range(10):
        progress("retry", step="platform/talos", attempt=i, cause="HTTP 503: proxy: backend unavailable", delay=0.1)
    assert out.getvalue().splitlines() == [
        "warning: platform/talos: the same failure retried 10 times: HTTP 503: proxy: backend unavailable"]
    assert len(progress.warnings) == 1 and progress.steps["platform/talos"].retries == 22


def test_the_summary_is_ten_lines_at_most_and_ends_with_the_log(tmp_path: Path) -> None:
    from tierzero.cli.summary import SUMMARY_MAX_LINES, run_summary
    from tierzero.engine.progress import Progress

    progress = Progress()
    phases = {f"phase{p}": [f"phase{p}/step{s}" for s in range(4)] for p in range(12)}
    progress("run_started", run_id=1, target="real", steps=48, command="deploy", phases=phases)
    for phase, steps in phases.items():
        for sid in steps:
            progress("step_started", step=sid, phase=phase, reason="new")
            progress("retry", step=sid, attempt=1, cause="x" * 300, delay=1.0)
            progress("log", step=sid, message="careful", level="warn")
            progress("step_done", step=sid, phase=phase, elapsed=float(len(sid)))
    configs = {}
    for cluster in ("a", "b", "c"):
        for kind in ("kubeconfig", "talosconfig"):
            path = tmp_path / cluster / kind
            path.parent.mkdir(exist_ok=True)
            path.write_text("x")
            configs[f"{kind} ({cluster})"] = str(path)
    lines = run_summary(progress, command="deploy", target="real", status="done", locations=configs,
                        log={"log": str(tmp_path / "run.log"), "jsonl": ""}, masked=2, orphans=["old/step"])
    assert len(lines) <= SUMMARY_MAX_LINES
    assert lines[0].startswith("deployed (real) in ") and "48 created" in lines[0]
    assert lines[-1] == f"log: {tmp_path / 'run.log'} (2 values masked as ***)"
    assert all(len(line) <= 100 for line in lines[:-1] if "config" not in line)
    assert any("kubeconfigs: a " in line for line in lines) and any("48 warnings" in line for line in lines)


def test_tee_sets_the_redactor_on_every_sink_and_each_gets_its_own_fields() -> None:
    from tierzero.engine.progress import JsonProgress, Tee

    first, second = io.StringIO(), io.StringIO()
    tee = Tee(JsonProgress(first), JsonProgress(second), None)
    tee.redact = lambda text: text.replace("pw123456", "***")
    tee("log", step="s", message="login pw123456")
    for out in (first, second):
        assert json.loads(out.getvalue())["message"] == "login ***"


async def test_a_reader_that_goes_away_does_not_stop_the_run(tmp_path: Path) -> None:
    import os

    from tierzero.engine.progress_plain import PlainProgress

    read_end, write_end = os.pipe()
    os.close(read_end)  # like `tierzero deploy | head -1` after its first line
    stream = os.fdopen(write_end, "w")
    ledger = Ledger(tmp_path / "l")
    await make_runner(tmp_path, diamond(ledger), emit=PlainProgress(stream, heartbeat=0)).run()
    assert len(ledger.lines()) == 6  # every step ran
    stream.close()


def test_durations_read_like_a_person_writes_them() -> None:
    from tierzero.engine.progress import seconds

    assert [seconds(v) for v in (0.04, 9.94, 9.96, 59.6, 219.99999, 3599.6, 3725.0)] == [
        "0.0s", "9.9s", "10s", "1m00s", "3m40s", "1h00m", "1h02m"]
