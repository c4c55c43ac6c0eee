from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from tierzero.engine.runner import Selection, StepFailed
from tierzero.engine.step import Step
from tierzero.errors import InputError

from engine_helpers import Ledger, diamond, make_runner


async def test_first_run_then_noop_rerun(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.txt")
    calls: list[str] = []
    res = await make_runner(tmp_path, diamond(ledger, log=calls)).run()
    assert sorted(res.ran) == sorted(s.id for s in diamond(ledger)) and not res.skipped
    calls.clear()
    res2 = await make_runner(tmp_path, diamond(ledger, log=calls)).run()
    assert calls == [] and len(res2.skipped) == 6
    assert len(ledger.lines()) == 6


async def test_independent_steps_run_concurrently(tmp_path: Path) -> None:
    all_started = asyncio.Event()
    started: list[str] = []

    async def run(ctx, _inputs=None):
        started.append(ctx.step_id)
        if len(started) == 5:
            all_started.set()
        # Run one after another, the first step would wait here for the others forever.
        await asyncio.wait_for(all_started.wait(), 120)
        return {}

    steps = [Step(f"cloud/s{i}", "cloud", "", run) for i in range(5)]  # type: ignore[arg-type]
    await make_runner(tmp_path, steps, concurrency=5).run()
    assert sorted(started) == [f"cloud/s{i}" for i in range(5)]


async def test_concurrency_is_bounded(tmp_path: Path) -> None:
    active = peak = 0
    three_active = asyncio.Event()

    async def run(ctx, _inputs=None):
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        if active == 3:
            three_active.set()
        await asyncio.wait_for(three_active.wait(), 120)  # hold on until the bound is reached once
        active -= 1
        return {}

    steps = [Step(f"cloud/s{i}", "cloud", "", run) for i in range(8)]  # type: ignore[arg-type]
    await make_runner(tmp_path, steps, concurrency=3).run()
    assert peak == 3


async def test_changed_inputs_rerun_step_and_downstream_only(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l")
    await make_runner(tmp_path, diamond(ledger)).run()
    calls: list[str] = []
    steps = diamond(ledger, {"c": 2}, log=calls)
    plan = {p.step_id: p for p in make_runner(tmp_path, steps).plan()}
    assert plan["cloud/c"].reason == "inputs changed"
    assert plan["cloud/d"].reason == "downstream of change"
    assert plan["platform/e"].action == "run" and plan["cloud/b"].action == "skip" and plan["platform/f"].action == "skip"
    res = await make_runner(tmp_path, steps).run()
    assert sorted(calls) == ["cloud/c", "cloud/d", "platform/e"]
    assert set(res.skipped) == {"setup/a", "cloud/b", "platform/f"}


async def test_downstream_with_unchanged_inputs_is_skipped(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l")
    calls: list[str] = []

    def steps(v: int) -> list[Step]:
        async def up(ctx, _inputs=None):
            calls.append("up")
            return {"parity": v % 2}

        async def down(ctx, _inputs=None):
            calls.append("down")
            return {}

        return [Step("cloud/up", "cloud", "", up, lambda ctx: v),  # type: ignore[arg-type]
                Step("cloud/down", "cloud", "", down, lambda ctx: ctx.output("cloud/up")["parity"], ("cloud/up",))]  # type: ignore[arg-type]

    await make_runner(tmp_path, steps(1)).run()
    calls.clear()
    await make_runner(tmp_path, steps(3)).run()  # up re-runs, its output is unchanged
    assert calls == ["up"]
    del ledger


async def test_permanent_failure_stops_with_step_cause_and_remedy(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l")
    started: list[str] = []

    async def boom(ctx, _inputs=None):
        raise RuntimeError("quota exceeded for A1 cores")

    steps = diamond(ledger, log=started)
    steps[2] = Step("cloud/c", "cloud", "", boom, needs=("setup/a",))  # type: ignore[arg-type]
    events: list[tuple[str, dict]] = []
    with pytest.raises(StepFailed) as err:
        await make_runner(tmp_path, steps, emit=lambda k, **f: events.append((k, f))).run()
    assert err.value.step_id == "cloud/c"
    assert "quota exceeded" in err.value.message and err.value.hint and "again" in err.value.hint
    assert "cloud/d" not in started and "platform/e" not in started
    runner = make_runner(tmp_path, diamond(ledger))
    assert runner.state.get("cloud/c").status == "failed"
    assert runner.state.last_run().status == "failed"
    plan = {p.step_id: p for p in runner.plan()}
    assert plan["cloud/c"].reason == "failed last time" and plan["cloud/d"].reason == "new"
    await runner.run()
    assert runner.state.get("platform/e").status == "done"


async def test_only_needs_earlier_phases_done(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l")
    with pytest.raises(InputError, match="has not finished"):
        await make_runner(tmp_path, diamond(ledger)).run(Selection(only="platform"))
    await make_runner(tmp_path, diamond(ledger)).run(Selection(until="cloud"))
    res = await make_runner(tmp_path, diamond(ledger, {"a": 9})).run(Selection(only="platform"))
    assert sorted(res.ran) == ["platform/e", "platform/f"]


async def test_destroy_reverse_order_and_forgets_state(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l")
    await make_runner(tmp_path, diamond(ledger)).run()
    runner = make_runner(tmp_path, diamond(ledger))
    undone = await runner.destroy()
    assert undone.index("platform/e") < undone.index("cloud/d") < undone.index("cloud/b") < undone.index("setup/a")
    assert runner.state.records() == {}
    assert await make_runner(tmp_path, diamond(ledger)).destroy() == []


async def test_outputs_must_be_json(tmp_path: Path) -> None:
    async def bad(ctx, _inputs=None):
        return {"when": object()}

    with pytest.raises(StepFailed, match="JSON"):
        await make_runner(tmp_path, [Step("cloud/x", "cloud", "", bad)]).run()  # type: ignore[arg-type]


async def test_a_type_error_naming_json_inside_a_step_keeps_its_own_message(tmp_path: Path) -> None:
    # A step's own TypeError (here from its JSON parsing) is its failure, not "outputs not JSON-able".
    async def parses(ctx, _inputs=None):
        raise TypeError("the JSON object must be str, bytes or bytearray, not NoneType")

    with pytest.raises(StepFailed) as err:
        await make_runner(tmp_path, [Step("cloud/x", "cloud", "", parses)]).run()  # type: ignore[arg-type]
    assert "the JSON object must be str" in err.value.message
    assert "not JSON-able" not in err.value.message


async def test_outputs_that_are_not_json_leave_the_step_failed(tmp_path: Path) -> None:
    async def bad(ctx, _inputs=None):
        return {"when": {1, 2}}

    runner = make_runner(tmp_path, [Step("cloud/x", "cloud", "", bad)])  # type: ignore[arg-type]
    with pytest.raises(StepFailed, match="outputs are not JSON-able"):
        await runner.run()
    assert runner.state.get("cloud/x").status == "failed"
    assert runner.state.last_run().status == "failed"


async def test_an_interrupted_destroy_finishes_its_run_as_failed(tmp_path: Path) -> None:
    # Ctrl-C during destroy: `status` must not show the destroy run as running for ever.
    ledger = Ledger(tmp_path / "l")
    await make_runner(tmp_path, diamond(ledger)).run()
    entered = asyncio.Event()

    async def hangs(ctx, _inputs=None):
        entered.set()
        await asyncio.Event().wait()

    steps = [dataclasses.replace(s, destroy=hangs) for s in diamond(ledger)]
    runner = make_runner(tmp_path, steps)
    task = asyncio.create_task(runner.destroy())
    await asyncio.wait_for(entered.wait(), 30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    last = runner.state.last_run("destroy")
    assert last is not None and last.finished is not None and last.status == "failed"
    assert last.error == "CancelledError"


async def test_step_errors_are_redacted_by_the_process_redactor_by_default(tmp_path: Path) -> None:
    from tierzero.adapters.redact import process_redactor

    process_redactor().add("pw-runner-default-4711")

    async def leaks(ctx, _inputs=None):
        raise RuntimeError("login failed with pw-runner-default-4711")

    runner = make_runner(tmp_path, [Step("cloud/x", "cloud", "", leaks)])  # type: ignore[arg-type]
    with pytest.raises(StepFailed) as err:
        await runner.run()
    assert "pw-runner-default-4711" not in err.value.message and "***" in err.value.message
    assert "pw-runner-default-4711" not in (runner.state.get("cloud/x").last_error or "")


async def test_forgotten_state_reruns_every_step_adopting_what_exists(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l")
    await make_runner(tmp_path, diamond(ledger)).run()
    runner = make_runner(tmp_path, diamond(ledger))
    assert {p.action for p in runner.plan()} == {"skip"}
    runner.state.forget_all()  # what a wiped sandbox world does to its state
    assert {p.action for p in runner.plan()} == {"run"}
    res = await runner.run()
    assert len(res.ran) == 6 and len(ledger.lines()) == 6  # steps re-ran, adopting what exists


async def test_failure_cancels_running_siblings_fast(tmp_path: Path) -> None:
    slow_started = asyncio.Event()

    async def slow(ctx, _inputs=None):
        slow_started.set()
        await asyncio.sleep(3600)
        return {}

    async def boom(ctx, _inputs=None):
        await slow_started.wait()
        raise RuntimeError("bad")

    steps = [Step("cloud/slow", "cloud", "", slow), Step("cloud/boom", "cloud", "", boom)]  # type: ignore[arg-type]
    runner = make_runner(tmp_path, steps)
    with pytest.raises(StepFailed, match="cloud/boom"):
        await asyncio.wait_for(runner.run(), 120)  # without the cancel, the slow sibling would hold the run for an hour
    rec = runner.state.get("cloud/slow")
    assert rec.status == "pending" and "cancelled" in rec.last_error
    assert {p.step_id: p.reason for p in runner.plan()}["cloud/slow"] == "not finished"


async def test_interrupted_run_leaves_steps_pending(tmp_path: Path) -> None:
    started = asyncio.Event()

    async def slow(ctx, _inputs=None):
        started.set()
        await asyncio.sleep(3600)
        return {}

    runner = make_runner(tmp_path, [Step("cloud/slow", "cloud", "", slow)])  # type: ignore[arg-type]
    task = asyncio.create_task(runner.run())
    await asyncio.wait_for(started.wait(), 120)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert runner.state.get("cloud/slow").status == "pending"
    assert runner.state.last_run().status == "failed"
