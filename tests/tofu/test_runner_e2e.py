"""The runner against the real tofu/terraform binary, on fixture modules of terraform_data only."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tierzero.adapters.tofu import StateLockError, TofuRunner
from tierzero.adapters.tofu_events import TofuEvent
from tierzero.adapters.tofu_workspace import write_json
from tierzero.errors import OperationError, RefusedError


def accept(plan: dict) -> None:
    assert "resource_changes" in plan or "planned_values" in plan


def refuse_creates(plan: dict) -> None:
    creates = [rc["address"] for rc in plan.get("resource_changes", []) if "create" in rc["change"]["actions"]]
    if creates:
        raise RefusedError(f"guard refused: would create {creates}")


def test_init_plan_guard_apply_outputs_and_noop_second_apply(make_runner) -> None:
    events: list[TofuEvent] = []
    runner: TofuRunner = make_runner("basic", events=events)
    write_json(runner.workdir / "tierzero.auto.tfvars.json", {"greeting": "hi", "items": {"a": {"size": 1}, "b": {"size": 2}}})

    runner.init()
    plan, applied = runner.plan_guard_apply(accept)

    assert plan.changes.add == 3 and plan.changes.remove == 0
    assert {rc["address"] for rc in plan.resource_changes} == {
        'terraform_data.item["a"]', 'terraform_data.item["b"]', "terraform_data.chatty"
    }
    kinds = {e.type for e in events}
    assert {"version", "planned_change", "change_summary", "apply_start", "apply_complete", "outputs"} <= kinds
    completed = sorted(e.address for e in events if e.type == "apply_complete")
    assert completed == ["terraform_data.chatty", 'terraform_data.item["a"]', 'terraform_data.item["b"]']
    assert applied.change_summary is not None and applied.change_summary.add == 3

    outputs = runner.output()
    assert outputs["greeting"] == "hi"
    assert outputs["items"]["b"] == {"name": "b", "size": 2}

    events.clear()
    second_plan, second = runner.plan_guard_apply(accept)
    assert second_plan.changes.is_noop
    assert second.change_summary is not None and second.change_summary.is_noop
    assert not [e for e in events if e.type == "apply_start"]


def test_destroy_is_a_guarded_plan(make_runner) -> None:
    runner: TofuRunner = make_runner("basic")
    write_json(runner.workdir / "tierzero.auto.tfvars.json", {"greeting": "hi", "items": {"a": {"size": 1}}})
    runner.init()
    runner.plan_guard_apply(accept)

    seen: list[dict] = []

    def refuse_deletes(plan: dict) -> None:
        seen.append(plan)
        raise RefusedError("guard refused: destroy not allowed")

    with pytest.raises(RefusedError):
        runner.destroy(refuse_deletes)
    assert {rc["change"]["actions"][0] for rc in seen[0]["resource_changes"]} == {"delete"}
    assert runner.output()["items"] == {"a": {"name": "a", "size": 1}}  # nothing was destroyed

    result = runner.destroy(accept)
    assert result.change_summary is not None and result.change_summary.remove == 2
    assert runner.output() == {}


def test_a_failing_event_callback_stops_the_tool_and_releases_the_lock(make_runner) -> None:
    def explode(event: TofuEvent) -> None:
        if event.type == "apply_start":
            raise KeyboardInterrupt

    runner: TofuRunner = make_runner("lock", on_event=explode)
    runner.init()
    write_json(runner.workdir / "tierzero.auto.tfvars.json", {"hold_seconds": 30})
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        runner.plan_guard_apply(accept)
    assert time.monotonic() - started < 20
    runner.on_event = None
    write_json(runner.workdir / "tierzero.auto.tfvars.json", {"hold_seconds": 0})
    runner.plan()  # the interrupted run let go of the state lock


def test_guard_refusal_stops_before_apply(make_runner) -> None:
    runner: TofuRunner = make_runner("basic")
    write_json(runner.workdir / "tierzero.auto.tfvars.json", {"greeting": "hi"})
    runner.init()

    with pytest.raises(RefusedError, match="would create"):
        runner.plan_guard_apply(refuse_creates)

    assert runner.output() == {}
    assert not (runner.workdir / "terraform.tfstate").exists() or not json.loads(
        (runner.workdir / "terraform.tfstate").read_text()
    ).get("resources")


def test_apply_refuses_a_plan_file_changed_after_the_guard(make_runner) -> None:
    runner: TofuRunner = make_runner("basic")
    write_json(runner.workdir / "tierzero.auto.tfvars.json", {"greeting": "hi"})
    runner.init()
    plan = runner.plan()
    plan.plan_file.write_bytes(plan.plan_file.read_bytes() + b"x")
    with pytest.raises(OperationError, match="changed after it was checked"):
        runner.apply(plan)


def test_logs_are_written_per_run_and_redacted(make_runner) -> None:
    secret = "correct-horse-battery-staple"
    events: list[TofuEvent] = []
    runner: TofuRunner = make_runner("basic", env={"TF_VAR_secret_word": secret}, secrets=[secret], events=events)
    write_json(runner.workdir / "tierzero.auto.tfvars.json", {"greeting": "hi"})
    runner.init()
    runner.plan_guard_apply(accept)
    assert any("the word is ***" in e.message for e in events)
    assert not any(secret in e.message for e in events)

    logs = sorted((runner.workdir / ".tierzero-logs").glob("*.log"))
    commands = [p.name.split("-", 1)[1] for p in logs]
    assert commands == ["init.log", "plan.log", "show.log", "apply.log"]
    text = "\n".join(p.read_text() for p in logs)
    assert "the word is ***" in text
    assert secret not in text
    assert "TF_VAR_secret_word" in text  # names of extra env vars are logged, values never


def test_plan_errors_become_operation_errors_with_the_log(make_runner) -> None:
    runner: TofuRunner = make_runner("basic")
    runner.init()
    with pytest.raises(OperationError) as caught:
        runner.plan()  # no value for the required variable
    assert "No value for required variable" in caught.value.message
    assert ".tierzero-logs" in (caught.value.hint or "")


def test_held_state_lock_is_reported_with_holder_and_remedy(make_runner, tofu_binary) -> None:
    runner: TofuRunner = make_runner("lock")
    runner.init()
    holder = subprocess.Popen(
        [tofu_binary.path, "apply", "-auto-approve", "-input=false", "-no-color", "-var", "hold_seconds=60"],
        cwd=runner.workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        lock_info = runner.workdir / ".terraform.tfstate.lock.info"
        deadline = time.monotonic() + 10
        while not lock_info.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert lock_info.exists(), "the holder never took the lock"
        held_id = json.loads(lock_info.read_text())["ID"]

        with pytest.raises(StateLockError) as caught:
            runner.plan()
    finally:
        holder.send_signal(signal.SIGINT)  # interrupted like Ctrl-C, it gives the lock back
        holder.wait(timeout=60)

    error = caught.value
    assert error.lock.id == held_id
    assert error.lock.who and error.lock.who in error.message
    assert held_id in error.message
    assert f"force-unlock {held_id}" in (error.hint or "")
    runner.plan()  # the lock is free again once the holder is done


def test_binary_discovery_fails_clearly_without_tofu_or_terraform(tmp_path: Path) -> None:
    from tierzero.adapters.tofu import find_binary

    with pytest.raises(OperationError, match="neither tofu nor terraform"):
        find_binary(path=str(tmp_path))


def test_binary_discovery_rejects_a_too_old_version(tofu_binary) -> None:
    from tierzero.adapters.tofu import find_binary

    with pytest.raises(OperationError, match="found only"):
        find_binary((99, 0, 0))
