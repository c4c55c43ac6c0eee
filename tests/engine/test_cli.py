"""deploy / status / validate / destroy through the CLI, in-process, with synthetic steps."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tierzero.cli import main as cli_main
from tierzero.cli import output
from tierzero.engine.step import Step
from tierzero.workspace.layout import Workspace

from cloud_state import launched_with
from engine_helpers import Ledger, diamond


def _cli(argv: list[str]) -> int:
    cli_main._register()
    return output.invoke(cli_main.app, argv)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    assert _cli(["init", str(tmp_path)]) == 0
    ledger = Ledger(tmp_path / "ledger.txt")

    async def change(ctx, _inputs=None):
        ledger.ensure("real-change")
        return {}

    async def undo(ctx, _inputs=None):
        ledger.ensure("undone")
        return {}

    steps = diamond(ledger) + [Step("services/change", "services", "changes real infrastructure", change, destroy=undo, real_only=True)]  # type: ignore[arg-type]
    monkeypatch.setattr("tierzero.phases.registry.all_steps", lambda spec: steps)
    # The steps are synthetic: the real target's credentials and reachability are not needed
    # (the preflight itself: tests/phases/test_preflight.py).
    monkeypatch.setattr("tierzero.phases.preflight.real_findings", lambda *args, **kwargs: [])
    return {"spec": str(tmp_path / "tierzero.yaml"), "ledger": ledger, "root": tmp_path}


def test_real_deploy_refuses_without_tty_or_yes(project: dict, capsys: pytest.CaptureFixture) -> None:
    capsys.readouterr()
    assert _cli(["deploy", "-f", project["spec"]]) == 1
    assert "without confirmation" in capsys.readouterr().err
    assert project["ledger"].lines() == []


def test_sandbox_deploy_json_events_then_status_and_dry_run(project: dict, capsys: pytest.CaptureFixture) -> None:
    capsys.readouterr()
    assert _cli(["deploy", "-f", project["spec"], "--target", "sandbox", "--json"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert events[0]["event"] == "run_started" and events[-1]["event"] == "summary"
    assert "kubeconfig (main)" in events[-1]["locations"]
    assert sum(e["event"] == "step_done" for e in events) == 7
    assert _cli(["deploy", "-f", project["spec"], "--target", "sandbox", "--dry-run", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)["plan"]
    assert {p["action"] for p in plan} == {"skip"}  # the sandbox world persists: nothing left to do
    assert _cli(["status", "-f", project["spec"], "--target", "sandbox", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["last_run"]["status"] == "done" and {s["status"] for s in status["steps"]} == {"done"}
    assert _cli(["status", "-f", project["spec"], "--json"]) == 0  # follows the last run: the sandbox
    assert json.loads(capsys.readouterr().out)["target"] == "sandbox"
    assert _cli(["status", "-f", project["spec"], "--target", "real", "--json"]) == 0  # the real target has its own state
    assert {s["status"] for s in json.loads(capsys.readouterr().out)["steps"]} == {"not run"}
    world = Path(project["spec"]).parent / ".tierzero" / "sandbox" / "world"
    (world / "world.id").rename(world / "world.id.bak")  # as if the world were wiped behind our back
    assert _cli(["status", "-f", project["spec"], "--target", "sandbox", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["sandbox_world"] == "gone"
    (world / "world.id.bak").rename(world / "world.id")
    assert _cli(["status", "-f", project["spec"], "--target", "sandbox", "--json"]) == 0
    assert "sandbox_world" not in json.loads(capsys.readouterr().out)
    assert _cli(["destroy", "-f", project["spec"], "--target", "sandbox"]) == 0
    assert "destroyed (sandbox)" in capsys.readouterr().out
    assert _cli(["status", "-f", project["spec"], "--target", "sandbox", "--json"]) == 0
    assert {s["status"] for s in json.loads(capsys.readouterr().out)["steps"]} == {"not run"}
    assert not (Path(project["spec"]).parent / ".tierzero" / "sandbox" / "world").exists()


def test_real_deploy_with_yes_then_destroy(project: dict, capsys: pytest.CaptureFixture) -> None:
    assert _cli(["deploy", "-f", project["spec"], "--yes", "--only", "setup"]) == 0
    assert _cli(["deploy", "-f", project["spec"], "--yes", "--timings"]) == 0
    out = capsys.readouterr().out
    assert "deployed (real)" in out and "timings" in out and "run elapsed" in out
    assert out.splitlines()[-1].startswith("log: ") and out.splitlines()[-1].endswith("-deploy-real.log")
    assert "real-change" in project["ledger"].lines()
    assert _cli(["destroy", "-f", project["spec"]]) == 1  # no TTY, no --yes
    assert _cli(["destroy", "-f", project["spec"], "--yes"]) == 0
    assert "destroyed setup/a" in project["ledger"].lines() and "undone" in project["ledger"].lines()
    capsys.readouterr()
    assert _cli(["status", "-f", project["spec"], "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert {s["status"] for s in status["steps"]} == {"not run"} and status["last_run"]["command"] == "destroy"


def test_validate_in_sandbox_and_bad_phase(project: dict, capsys: pytest.CaptureFixture) -> None:
    capsys.readouterr()
    # Nothing was deployed (the steps are synthetic): the OCI stand-in's tenancy is empty, and says so.
    assert _cli(["validate", "-f", project["spec"], "--target", "sandbox", "--json"]) == 1
    checks = {c["check"]: c for c in json.loads(capsys.readouterr().out)["checks"]}
    assert checks["OCI instances running"]["status"] == "fail" and "homelab-a1-1 missing" in checks["OCI instances running"]["evidence"]
    assert checks["OCI within Always Free"]["status"] == "fail"  # never a pass on no instance at all
    assert checks["cost this month"]["status"] == "skip"  # no usage record yet
    # No bastion instance was launched, so it accepts no key: nothing private can be reached.
    assert checks["kubernetes"]["status"] == "fail" and "bastion" in checks["kubernetes"]["evidence"]
    assert "refuses the login" in checks["kubernetes"]["evidence"]
    assert "main: Flux reconciled" not in checks  # the cluster checks could not run: one failed row says why
    # The cloud phase launched the bastion with the workspace key: the cluster's stand-ins answer through it.
    ws = Workspace(Path(project["root"]) / ".tierzero")
    launched_with(ws, ws.ssh_public_key.read_text())
    assert _cli(["validate", "-f", project["spec"], "--target", "sandbox", "--json"]) == 1
    checks = {c["check"]: c for c in json.loads(capsys.readouterr().out)["checks"]}
    assert checks["main: Kubernetes nodes Ready"]["status"] == "pass"
    flux = checks["main: Flux reconciled"]  # a fresh Git host and cluster: no pushed branch, no Flux
    assert flux["status"] == "fail" and "nothing was pushed" in flux["evidence"]
    assert _cli(["validate", "-f", project["spec"], "--target", "sandbox"]) == 1
    lines = capsys.readouterr().out.splitlines()
    passed = sum(c["status"] == "pass" for c in checks.values())
    failed = sum(c["status"] == "fail" for c in checks.values())
    assert len(lines) == len(checks) + 2 and {line[0] for line in lines[:-2]} == {"✓", "–", "✗"}
    assert lines[-2].startswith(f"{passed} passed, {failed} failed, {len(checks) - passed - failed} skipped of {len(checks)} checks (sandbox) in ")
    assert lines[-1].startswith("log: ") and lines[-1].endswith("-validate-sandbox.log")
    assert _cli(["deploy", "-f", project["spec"], "--target", "sandbox", "--only", "nope"]) == 2
    assert "unknown phase" in capsys.readouterr().err


def test_failed_step_is_one_clear_message(project: dict, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    async def boom(ctx, _inputs=None):
        raise ConnectionRefusedError("connect to 10.0.1.5:22 refused")

    monkeypatch.setattr("tierzero.phases.registry.all_steps", lambda spec: [Step("cloud/x", "cloud", "x", boom)])  # type: ignore[arg-type]
    capsys.readouterr()
    assert _cli(["deploy", "-f", project["spec"], "--target", "sandbox"]) == 1
    err = capsys.readouterr().err
    assert "step cloud/x failed: ConnectionRefusedError: connect to 10.0.1.5:22 refused" in err
    assert "hint:" in err and "Traceback" not in err


def test_a_sandbox_command_waits_its_turn_for_the_world(project: dict, capsys: pytest.CaptureFixture) -> None:
    """A started sandbox writes its world back: validate must not run beside a deploy on it."""
    from tierzero.engine.lock import WorkspaceLock

    capsys.readouterr()
    with WorkspaceLock(project["root"] / ".tierzero" / "state" / "lock"):
        assert _cli(["validate", "-f", project["spec"], "--target", "sandbox"]) == 1
        assert _cli(["status", "-f", project["spec"], "--target", "sandbox"]) == 0  # reads the state only
    assert "locked by pid" in capsys.readouterr().err


def _calling_steps(ledger: Ledger) -> list[Step]:
    from tierzero.adapters import calls

    async def talk(ctx, _inputs=None):
        calls.sent("ssh", "pve1", "pveversion")
        ledger.ensure("talked")
        return {}

    async def undo(ctx, _inputs=None):
        calls.sent("ssh", "pve1", "pvecm delnode pve2")
        return {}

    return [Step("hypervisors/talk", "hypervisors", "asks pve1", talk, destroy=undo, always=True)]  # type: ignore[arg-type]


def test_verbose_shows_every_call_and_the_log_always_has_them(project: dict, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr("tierzero.phases.registry.all_steps", lambda spec: _calling_steps(project["ledger"]))
    capsys.readouterr()
    outputs = {}
    for flags in ([], ["-v"], ["--json"], ["--json", "-v"]):
        assert _cli(["deploy", "-f", project["spec"], "--yes", *flags]) == 0
        outputs[" ".join(flags)] = capsys.readouterr().out
    assert "pveversion" not in outputs[""] and "[hypervisors] hypervisors/talk: checked in" in outputs[""]
    assert "  hypervisors/talk: ssh pve1: pveversion" in outputs["-v"].splitlines()
    calls_in = {flags: [json.loads(line) for line in out.splitlines() if '"call"' in line] for flags, out in outputs.items() if "json" in flags}
    assert calls_in["--json"] == [] and [c["request"] for c in calls_in["--json -v"]] == ["pveversion"]
    logs = sorted((project["root"] / ".tierzero" / "logs").glob("*-deploy-real.jsonl"))
    assert len(logs) == 4
    for log in logs:  # whatever was shown, every run's log holds the call, with its step
        sent = [json.loads(line) for line in log.read_text().splitlines() if '"call"' in line]
        assert [(c["step"], c["via"], c["target"], c["request"]) for c in sent] == [("hypervisors/talk", "ssh", "pve1", "pveversion")]


def test_destroy_json_streams_events_and_ends_with_a_summary(project: dict, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr("tierzero.phases.registry.all_steps", lambda spec: _calling_steps(project["ledger"]))
    assert _cli(["deploy", "-f", project["spec"], "--yes"]) == 0
    capsys.readouterr()
    assert _cli(["destroy", "-f", project["spec"], "--json"]) == 1  # real infrastructure: --json needs --yes
    assert "--yes" in capsys.readouterr().err
    assert _cli(["destroy", "-f", project["spec"], "--json", "--yes"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [e["event"] for e in events] == ["run_started", "step_started", "step_done", "run_finished", "summary"]
    summary = events[-1]
    assert summary["status"] == "done" and summary["undone"] == ["hypervisors/talk"] and summary["left"] == []
    assert summary["changes"] == {"hypervisors": {"destroyed": 1}} and Path(summary["log"]["jsonl"]).is_file()
    log = [json.loads(line) for line in Path(summary["log"]["jsonl"]).read_text().splitlines()]
    assert [c["request"] for c in log if c["event"] == "call"] == ["pvecm delnode pve2"]
    assert _cli(["destroy", "-f", project["spec"], "--json", "--yes"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "nothing to do"


def test_status_shows_one_line_per_phase_and_where_the_last_log_is(project: dict, capsys: pytest.CaptureFixture) -> None:
    assert _cli(["deploy", "-f", project["spec"], "--yes"]) == 0
    capsys.readouterr()
    assert _cli(["status", "-f", project["spec"]]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("real: last run 1, deploy (all), done at ")
    assert [line.split()[:2] for line in lines[1:5]] == [["✓", "setup"], ["✓", "cloud"], ["✓", "platform"], ["✓", "services"]]
    assert "3 done" in lines[2] and lines[-1].startswith("log: ") and lines[-1].endswith("-deploy-real.log")
    assert _cli(["status", "-f", project["spec"], "-v"]) == 0
    assert "platform/e" in capsys.readouterr().out  # every step, in a table
    assert _cli(["status", "-f", project["spec"], "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["log"].endswith("-deploy-real.log")


def test_deploy_offers_force_for_the_gitops_push(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        cli_main.run(["deploy", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--force" in text and "commits tierzero did not make" in text
