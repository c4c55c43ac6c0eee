"""Synthetic steps and an in-memory world for engine tests."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import secrets as pysecrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tierzero.engine.runner import Runner
from tierzero.engine.state import StateStore
from tierzero.engine.step import Step, StepContext


class FileSecrets:
    """A SecretStore kept in one JSON file (tests only; the real one is SOPS-encrypted)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _load(self) -> dict[str, str]:
        return json.loads(self.path.read_text()) if self.path.exists() else {}

    def get(self, name: str) -> str | None:
        return self._load().get(name)

    def put(self, name: str, value: str) -> None:
        data = self._load()
        data[name] = value
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, sort_keys=True))
        os.replace(tmp, self.path)

    def get_or_create(self, name: str, generate: Callable[[], str]) -> str:
        found = self.get(name)
        if found is None:
            found = generate()
            self.put(name, found)
        return found

    def resolve(self, ref: str) -> str:
        raise KeyError(ref)


class Ledger:
    """Side effects: one line per created thing; steps look up before appending."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def lines(self) -> list[str]:
        return self.path.read_text().splitlines() if self.path.exists() else []

    def ensure(self, entry: str) -> bool:
        if entry in self.lines():
            return False
        with self.path.open("a") as fh:
            fh.write(entry + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        return True


def ledger_step(sid: str, phase: str, ledger: Ledger, needs: tuple[str, ...] = (), *, value: Any = None,
                delay: float = 0.0, secret: bool = False, log: list[str] | None = None) -> Step:
    async def run(ctx: StepContext, _inputs: Any = None) -> dict[str, Any]:
        if log is not None:
            log.append(sid)
        if delay:
            await asyncio.sleep(delay)
        upstream = {n: ctx.output(n).get("value") for n in needs}
        if secret:
            ctx.secrets.get_or_create(f"{sid}-token", lambda: pysecrets.token_hex(16))
        ledger.ensure(f"{sid}={value}")
        digest = hashlib.sha256(json.dumps([value, upstream], sort_keys=True).encode()).hexdigest()[:12]
        return {"value": f"{sid}:{digest}", "upstream": upstream}

    def inputs(ctx: StepContext) -> Any:
        return {"value": value, "upstream": {n: ctx.output(n).get("value") for n in needs}}

    async def destroy(ctx: StepContext) -> dict[str, Any]:
        ledger.ensure(f"destroyed {sid}")
        return {}

    return Step(sid, phase, f"synthetic {sid}", run, inputs, needs, destroy)  # type: ignore[arg-type]


def diamond(ledger: Ledger, values: dict[str, Any] | None = None, **kw: Any) -> list[Step]:
    """setup/a -> cloud/b, cloud/c (parallel) -> cloud/d -> platform/e ; platform/f independent."""
    v = values or {}
    return [
        ledger_step("setup/a", "setup", ledger, value=v.get("a", 1), secret=True, **kw),
        ledger_step("cloud/b", "cloud", ledger, ("setup/a",), value=v.get("b", 1), **kw),
        ledger_step("cloud/c", "cloud", ledger, ("setup/a",), value=v.get("c", 1), secret=True, **kw),
        ledger_step("cloud/d", "cloud", ledger, ("cloud/b", "cloud/c"), value=v.get("d", 1), **kw),
        ledger_step("platform/e", "platform", ledger, ("cloud/d",), value=v.get("e", 1), **kw),
        ledger_step("platform/f", "platform", ledger, value=v.get("f", 1), **kw),
    ]


def make_runner(root: Path, steps: list[Step], emit: Any = None, concurrency: int = 8, target: str = "sandbox") -> Runner:
    state = StateStore.open(root / "state", target)
    return Runner(steps, spec=None, workspace=None, target=target, connections=None,
                  secrets=FileSecrets(root / "secrets.json"), state=state, emit=emit, concurrency=concurrency)
