"""Retries with exponential backoff and full jitter, bounded by a deadline.

A classifier decides whether a failure is transient (retry) or permanent (raise at once).
Sleep, clock and randomness are injectable so tests run in no time. Each retry is reported
through `on_retry(attempt, cause, delay)`, which is what `StepContext.retry` accepts::

    nodes = await retry_async(lambda: kube.nodes(), policy=Policy(deadline=600), on_retry=ctx.retry)
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from tierzero.errors import OperationError, TierzeroError

T = TypeVar("T")
Classifier = Callable[[BaseException], bool]  # True: transient, worth another attempt
OnRetry = Callable[[int, str, float], None]


class Transient(Exception):
    """Raise (or wrap) to say: this may work if tried again."""


class Permanent(Exception):
    """Raise (or wrap) to say: trying again will not help."""


class RetryExhausted(OperationError):
    """A transient failure outlasted the deadline or the attempts."""


@dataclass(frozen=True)
class Policy:
    base: float = 1.0  # first backoff ceiling, seconds
    cap: float = 30.0  # largest backoff ceiling
    deadline: float = 300.0  # give up after this many seconds in total
    max_attempts: int | None = None


def default_classifier(exc: BaseException) -> bool:
    transient = getattr(exc, "transient", None)  # tierzero.adapters.errors.CallFailed says itself
    if isinstance(exc, TierzeroError) and isinstance(transient, bool):
        return transient
    if isinstance(exc, (Permanent, TierzeroError)):
        return False
    if isinstance(exc, (Transient, ConnectionError, TimeoutError, asyncio.TimeoutError)):
        return True
    status = getattr(exc, "status", None)  # kubernetes ApiException, oci ServiceError, HTTP errors
    if isinstance(status, int):
        return status in (408, 425, 429) or status >= 500
    return isinstance(exc, OSError)


def backoff(attempt: int, policy: Policy, rng: Callable[[], float] = random.random) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**(attempt-1))]."""
    ceiling = min(policy.cap, policy.base * (2 ** max(0, attempt - 1)))
    return float(ceiling * rng())


def _cause(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _Budget:
    def __init__(self, policy: Policy, clock: Callable[[], float], what: str) -> None:
        self.policy, self.clock, self.what = policy, clock, what
        self.deadline = clock() + policy.deadline

    def next_delay(self, attempt: int, exc: BaseException, classify: Classifier, rng: Callable[[], float]) -> float:
        if not classify(exc):
            raise exc
        if self.policy.max_attempts is not None and attempt >= self.policy.max_attempts:
            raise RetryExhausted(f"{self.what} still failing after {attempt} attempts: {_cause(exc)}") from exc
        delay = backoff(attempt, self.policy, rng)
        remaining = self.deadline - self.clock()
        if remaining <= 0:
            raise RetryExhausted(
                f"{self.what} still failing after {self.policy.deadline:g}s ({attempt} attempts): {_cause(exc)}",
                hint="check that the service is reachable; the run can be resumed once it is",
            ) from exc
        return min(delay, remaining)


def retry_call(
    fn: Callable[[], T],
    *,
    policy: Policy = Policy(),
    classify: Classifier = default_classifier,
    on_retry: OnRetry | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    rng: Callable[[], float] = random.random,
    what: str = "the operation",
) -> T:
    budget = _Budget(policy, clock, what)
    attempt = 0
    while True:
        attempt += 1
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - the classifier decides
            delay = budget.next_delay(attempt, exc, classify, rng)
            if on_retry:
                on_retry(attempt, _cause(exc), delay)
            sleep(delay)


async def retry_async(
    fn: Callable[[], Awaitable[T]],
    *,
    policy: Policy = Policy(),
    classify: Classifier = default_classifier,
    on_retry: OnRetry | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
    rng: Callable[[], float] = random.random,
    what: str = "the operation",
) -> T:
    budget = _Budget(policy, clock, what)
    attempt = 0
    while True:
        attempt += 1
        try:
            return await fn()
        except Exception as exc:  # noqa: BLE001 - the classifier decides
            delay = budget.next_delay(attempt, exc, classify, rng)
            if on_retry:
                on_retry(attempt, _cause(exc), delay)
            await sleep(delay)
