"""The run log: every event of a run in `.tierzero/logs/`, redacted, private, pruned to the newest N
runs; and `call` events attributed to the step that sent them, from tasks and threads alike."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from pathlib import Path

import pytest

from tierzero.adapters import calls
from tierzero.adapters.redact import Redactor
from tierzero.engine.progress import Tee
from tierzero.engine.runlog import KEEP_ENV, RunLog, keep_from_env
from tierzero.engine.step import Step
from tierzero.errors import InputError

from engine_helpers import make_runner
from sandbox_runs import Events


class Clock:
    def __init__(self, start: float = 1_796_083_200.0) -> None:  # 2026-12-01T00:00:00Z
        self.now = start

    def __call__(self) -> float:
        return self.now


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_a_run_is_logged_whole_private_and_redacted(tmp_path: Path) -> None:
    redactor = Redactor(["hunter2-secret"])
    log = RunLog(tmp_path / "logs", "deploy", "sandbox", keep=5, clock=Clock(), redact=redactor.redact)

    async def talk(ctx, _inputs=None):
        calls.sent("ssh", "pve1", "pveum user token add root@pam tierzero --password hunter2-secret")
        await asyncio.to_thread(calls.sent, "proxmox", "pve1", "GET /nodes")
        ctx.log("logged in with hunter2-secret")
        return {}

    await make_runner(tmp_path, [Step("hypervisors/api-token", "hypervisors", "", talk)], emit=log).run()  # type: ignore[arg-type]
    log.close()
    assert log.paths == {"jsonl": str(tmp_path / "logs" / "20261201T000000Z-deploy-sandbox.jsonl"),
                         "log": str(tmp_path / "logs" / "20261201T000000Z-deploy-sandbox.log")}
    events = _read(Path(log.paths["jsonl"]))
    assert [e["event"] for e in events] == ["run_started", "step_started", "call", "call", "log", "step_done", "run_finished"]
    sent = [e for e in events if e["event"] == "call"]
    assert [(e["step"], e["via"], e["target"]) for e in sent] == [("hypervisors/api-token", "ssh", "pve1"), ("hypervisors/api-token", "proxmox", "pve1")]
    for path in log.paths.values():
        text = Path(path).read_text()
        assert "hunter2-secret" not in text and "***" in text
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "logs").st_mode) == 0o700
    assert log.masked == 2  # the command and the message
    readable = Path(log.paths["log"]).read_text().splitlines()
    assert readable[0].startswith("2026-12-01T00:00:00.000Z  deploy (sandbox) run 1")
    assert any(line.endswith("hypervisors/api-token: ssh pve1: pveum user token add root@pam tierzero --password ***") for line in readable)


def test_only_the_newest_runs_are_kept_and_names_never_collide(tmp_path: Path) -> None:
    clock = Clock()
    written = []
    for i in range(7):
        clock.now += 60 * (i % 3 != 2)  # two runs in the same second now and then
        log = RunLog(tmp_path, "deploy", "real", keep=3, clock=clock, redact=lambda t: t)
        log("log", step="", message=f"run {i}")
        log.close()
        written.append(Path(log.paths["jsonl"]))
    left = sorted(p.name for p in tmp_path.iterdir())
    assert len(left) == 6 and len(set(written)) == 7
    assert [p.name for p in written[-3:]] == [n for n in left if n.endswith(".jsonl")]
    assert [_read(p)[0]["message"] for p in written[-3:]] == ["run 4", "run 5", "run 6"]


def test_how_many_runs_to_keep_comes_from_the_environment() -> None:
    assert keep_from_env({}) == 20 and keep_from_env({KEEP_ENV: "3"}) == 3
    for bad in ("0", "-1", "many"):
        with pytest.raises(InputError) as err:
            keep_from_env({KEEP_ENV: bad})
        assert KEEP_ENV in err.value.message and err.value.hint


def test_nothing_is_written_before_the_first_event_or_after_the_end(tmp_path: Path) -> None:
    log = RunLog(tmp_path / "logs", "validate", "sandbox", redact=lambda t: t)
    log.close()
    log("call", step="", via="ssh", target="pve1", request="true")  # a straggler after the end
    assert log.paths == {} and not (tmp_path / "logs").exists()


async def test_concurrent_steps_get_their_own_calls_and_unbound_calls_go_nowhere(tmp_path: Path) -> None:
    calls.sent("ssh", "nowhere", "true")  # nothing bound: no receiver, no error
    events = Events()
    both = asyncio.Event()
    arrived = 0

    def make(name: str):
        async def run(ctx, _inputs=None):
            nonlocal arrived
            arrived += 1
            if arrived == 2:
                both.set()
            await both.wait()  # both steps are running at once from here on
            for i in range(3):
                calls.sent("talos", name, f"Version {i}")
                await asyncio.to_thread(calls.sent, "kubernetes", name, f"GET /version {i}")
                await asyncio.sleep(0)
            return {}
        return run

    steps = [Step("platform/a", "platform", "", make("a")), Step("platform/b", "platform", "", make("b"))]  # type: ignore[arg-type]
    await make_runner(tmp_path, steps, emit=Tee(events)).run()
    sent = events.of("call")
    assert len(sent) == 12
    assert all(e["step"] == f"platform/{e['target']}" and e["phase"] == "platform" for e in sent)
