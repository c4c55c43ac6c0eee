from __future__ import annotations

import pytest

from tierzero.adapters.retry import Permanent, Policy, RetryExhausted, Transient, backoff, retry_async, retry_call
from tierzero.engine.runner import StepFailed
from tierzero.engine.step import Step

from engine_helpers import make_runner
from fake_clock import FakeClock


def test_backoff_full_jitter_bounds() -> None:
    p = Policy(base=1, cap=8)
    assert [backoff(n, p, rng=lambda: 1.0) for n in range(1, 7)] == [1, 2, 4, 8, 8, 8]
    assert backoff(3, p, rng=lambda: 0.0) == 0


def test_transient_then_success_reports_retries() -> None:
    clock, seen, attempts = FakeClock(), [], iter([ConnectionError("refused"), TimeoutError(), None])

    def fn() -> str:
        exc = next(attempts)
        if exc:
            raise exc
        return "ok"

    out = retry_call(fn, sleep=clock.sleep, clock=clock, rng=lambda: 0.5, on_retry=lambda a, c, d: seen.append((a, c, d)))
    assert out == "ok" and [s[0] for s in seen] == [1, 2] and "ConnectionError: refused" in seen[0][1]
    assert clock.sleeps == [0.5, 1.0]


def test_permanent_raises_at_once() -> None:
    calls = []

    def fn() -> None:
        calls.append(1)
        raise Permanent("bad credentials")

    with pytest.raises(Permanent):
        retry_call(fn, sleep=lambda s: None)
    assert calls == [1]


def test_deadline_bounds_the_retries() -> None:
    clock = FakeClock()

    def fn() -> None:
        raise Transient("api not up")

    with pytest.raises(RetryExhausted, match="after 10s") as err:
        retry_call(fn, policy=Policy(base=1, cap=4, deadline=10), sleep=clock.sleep, clock=clock, rng=lambda: 1.0, what="the API")
    assert clock.now <= 10 and err.value.hint


async def test_async_retry_through_a_step_emits_retry_events(tmp_path) -> None:
    clock = FakeClock()
    tries = []

    async def flaky(ctx, _inputs=None):
        async def once():
            tries.append(1)
            if len(tries) < 3:
                raise ConnectionError("connection refused")
            return {"ok": True}

        return await retry_async(once, on_retry=ctx.retry, sleep=clock.asleep, clock=clock)

    async def broken(ctx, _inputs=None):
        async def once():
            raise Permanent("image not found: talos v9")

        return await retry_async(once, on_retry=ctx.retry, sleep=clock.asleep, clock=clock)

    events: list = []
    await make_runner(tmp_path, [Step("cloud/flaky", "cloud", "", flaky)], emit=lambda k, **f: events.append((k, f))).run()  # type: ignore[arg-type]
    retries = [f for k, f in events if k == "retry"]
    assert len(retries) == 2 and retries[0]["step"] == "cloud/flaky" and retries[0]["attempt"] == 1
    with pytest.raises(StepFailed, match="cloud/broken failed: Permanent: image not found"):
        await make_runner(tmp_path, [Step("cloud/broken", "cloud", "", broken)]).run()  # type: ignore[arg-type]
