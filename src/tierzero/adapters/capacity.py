"""Capacity hunting: retry an apply that OCI refused for reasons that belong to an availability domain.

A1.Flex capacity comes and goes. On "Out of host capacity" the hunter waits (exponential backoff
with full jitter), moves only the instances that failed to the next availability domain, re-plans
and applies again, until a deadline. An AD that does not offer the shape at all ("404-NotAuthorizedOrNotFound,
shape … not found") is dropped for the rest of the run, for every instance of that shape, with a line
saying why. Errors of the request itself (credentials, limits, quotas, the image, a parameter: see
oci_errors) never reach the hunter: the apply stops at once with the cause and the fix. Instances that
already exist are never touched: a re-plan that would delete or replace anything except an instance this
very hunt failed to create is refused.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from tierzero.adapters.backoff import Backoff
from tierzero.adapters.oci_errors import OciError
from tierzero.adapters.tofu import CapacityError, Guard, PlanResult, RunResult, TofuRunner
from tierzero.adapters.tofu_workspace import write_json
from tierzero.errors import OperationError, RefusedError

INSTANCE_VARIABLES = ("a1_instances", "micro_instances")
_KEY = re.compile(r'\["(?P<key>[^"]+)"\]$')


DEFAULT_BACKOFF = Backoff()


@dataclass(frozen=True)
class CapacityAttempt:
    """Emitted once per failed attempt, before the wait. `type` matches TofuEvent's, so one
    callback can switch on it for both."""

    type: ClassVar[str] = "capacity_retry"
    level: ClassVar[str] = "warn"
    attempt: int
    instances: tuple[str, ...]
    moves: dict[str, tuple[str, str]]  # instance -> (AD it failed in, AD it tries next)
    delay_seconds: float
    remaining_seconds: float
    message: str
    dropped: dict[str, str] = field(default_factory=dict)  # AD -> why it is out of the hunt for this run


class CapacityHunter:
    def __init__(
        self,
        runner: TofuRunner,
        *,
        variables: Mapping[str, Any],
        tfvars_path: Path,
        ad_candidates: Mapping[str, Sequence[str]],
        guard: Guard,
        deadline_seconds: float,
        backoff: Backoff = DEFAULT_BACKOFF,
        replaceable: Collection[str] = (),
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.runner = runner
        self.variables: dict[str, Any] = _deep_copy(dict(variables))
        self.tfvars_path = tfvars_path
        self.ad_candidates = {name: list(ads) for name, ads in ad_candidates.items()}
        self.guard = guard
        self.deadline_seconds = deadline_seconds
        self.backoff = backoff
        self.replaceable = set(replaceable)
        self.clock = clock
        self.sleep = sleep
        self.rng = rng or random.Random()
        self.attempts = 0
        self._failed_here: set[str] = set()
        self.dropped: dict[str, dict[str, str]] = {}  # instance variable -> {AD: why it was dropped}

    @property
    def failed_addresses(self) -> frozenset[str]:
        """Addresses whose create failed during this hunt. A guard that refuses A1 replacements can
        allow exactly these: a tainted instance that never came up is all they can be."""
        return frozenset(self._failed_here)

    def run(self) -> tuple[PlanResult, RunResult]:
        deadline = self.clock() + self.deadline_seconds
        failed_here = self._failed_here
        tried: dict[str, list[str]] = {}
        while True:
            write_json(self.tfvars_path, self.variables)
            plan = self.runner.plan()
            if self.attempts:
                self._refuse_destruction(plan, failed_here)
            self.guard(plan.plan)
            try:
                return plan, self.runner.apply(plan)
            except CapacityError as exc:
                self.attempts += 1
                failed_here.update(exc.addresses)
                # Without an address to attribute the failure to, retry in place: nothing moves.
                names = self._failed_instances(exc.addresses)
                errors = self._errors_by_name(exc)
                for name in names:
                    tried.setdefault(name, []).append(self._ad(name))
                dropped = self._drop_ads(names, errors)
                remaining = deadline - self.clock()
                if remaining <= 0:
                    raise self._gave_up(names, tried, exc) from exc
                delay = min(self.backoff.delay(self.attempts, self.rng), remaining)
                moves = {name: (self._ad(name), self._next_ad(name)) for name in names
                         if getattr(errors.get(name), "scope", "ad") != "retry"}
                for name, (_, new_ad) in moves.items():
                    self._set_ad(name, new_ad)
                message = exc.message + "".join(f"\ndropping {ad} for this run: {why}" for ad, why in dropped.items())
                self.runner.emit(CapacityAttempt(self.attempts, tuple(names), moves, delay, remaining, message, dropped))
                self.sleep(delay)

    # -- instances in the variables --------------------------------------------------------

    def _instances(self) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for var in INSTANCE_VARIABLES:
            found.update(self.variables.get(var) or {})
        return found

    def _failed_instances(self, addresses: Sequence[str]) -> list[str]:
        instances = self._instances()
        keys = [m["key"] for a in addresses if (m := _KEY.search(a))]
        return sorted({k for k in keys if k in instances})

    def _errors_by_name(self, exc: CapacityError) -> dict[str, OciError]:
        return {m["key"]: error for address, error in exc.errors.items() if (m := _KEY.search(address))}

    def _variable_of(self, name: str) -> str:
        return next((var for var in INSTANCE_VARIABLES if name in (self.variables.get(var) or {})), "")

    def _drop_ads(self, names: list[str], errors: Mapping[str, OciError]) -> dict[str, str]:
        """Drop, for every instance of the same kind, the ADs that answered they do not offer the shape."""
        newly: dict[str, str] = {}
        for name in names:
            error = errors.get(name)
            if error is None or error.scope != "ad-permanent":
                continue
            ad, var = self._ad(name), self._variable_of(name)
            if ad not in self.dropped.setdefault(var, {}):
                self.dropped[var][ad] = newly[ad] = error.cause
            if not self._candidates(name):
                raise OperationError(
                    f"no availability domain is left for {name}: "
                    + "; ".join(f"{d}: {why}" for d, why in self.dropped[var].items()),
                    hint=f"{error.fix}; or pick a region whose ADs offer the shape",
                )
        return newly

    def _candidates(self, name: str) -> list[str]:
        dropped = self.dropped.get(self._variable_of(name), {})
        return [ad for ad in (self.ad_candidates.get(name) or [self._ad(name)]) if ad not in dropped]

    def _ad(self, name: str) -> str:
        return str(self._instances()[name]["availability_domain"])

    def _next_ad(self, name: str) -> str:
        current = self._ad(name)
        candidates = self._candidates(name)
        if current not in candidates:
            everyone = self.ad_candidates.get(name) or [current]
            later = everyone[everyone.index(current) + 1:] + everyone if current in everyone else everyone
            return next(ad for ad in later if ad in candidates)
        return candidates[(candidates.index(current) + 1) % len(candidates)]

    def _set_ad(self, name: str, ad: str) -> None:
        self._instances()[name]["availability_domain"] = ad

    # -- safety -----------------------------------------------------------------------------

    def _refuse_destruction(self, plan: PlanResult, failed_here: set[str]) -> None:
        """Only an instance whose create failed in this hunt (tainted) may be replaced."""
        allowed = failed_here | self.replaceable
        refused = [
            rc["address"]
            for rc in plan.deletions()
            if not (rc.get("address") in allowed and rc.get("action_reason") == "replace_because_tainted")
        ]
        if refused:
            raise RefusedError(
                f"capacity hunt stopped: the re-plan would delete or replace {', '.join(refused)}",
                hint="a retry may only create what is missing; check the spec and the state, then run again",
            )

    def _gave_up(self, names: list[str], tried: dict[str, list[str]], exc: CapacityError) -> OperationError:
        detail = "; ".join(f"{n}: tried {', '.join(dict.fromkeys(tried[n]))}" for n in names) or exc.message
        return OperationError(
            f"no host capacity after {self.attempts} attempts in {self.deadline_seconds:.0f}s ({detail})",
            hint="A1 capacity frees up over hours: run again later with a longer deadline, "
            "or list more availability domains in cloud.oci.availability_domains; "
            "what was created is kept",
        )


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value
