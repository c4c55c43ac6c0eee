"""Capacity hunting: real applies that fail with "Out of host capacity", retried across ADs."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from tierzero.adapters.capacity import Backoff, CapacityAttempt, CapacityHunter
from tierzero.adapters.tofu import CapacityError, PlanResult
from tierzero.adapters.tofu_events import ChangeCounts
from tierzero.errors import OperationError, RefusedError

from fake_clock import FakeClock

ADS = ["AD-1", "AD-2", "AD-3"]


def capacity_vars(tmp_path: Path, fail: dict[str, int]) -> dict[str, Any]:
    counters = tmp_path / "counters"
    counters.mkdir(exist_ok=True)
    return {
        "counter_dir": str(counters),
        "a1_instances": {name: {"availability_domain": "AD-1", "fail_times": n} for name, n in fail.items()},
    }


def attempts_of(name: str, tmp_path: Path) -> int:
    path = tmp_path / "counters" / name
    return int(path.read_text()) if path.exists() else 0


def hunter_for(runner, variables, clock: FakeClock, guard=lambda plan: None, deadline: float = 3600) -> CapacityHunter:
    return CapacityHunter(
        runner,
        variables=variables,
        tfvars_path=runner.workdir / "tierzero.auto.tfvars.json",
        ad_candidates={name: ADS for name in variables["a1_instances"]},
        guard=guard,
        deadline_seconds=deadline,
        backoff=Backoff(base_seconds=10, cap_seconds=60),
        clock=clock,
        sleep=clock.sleep,
        rng=random.Random(7),
    )


def test_out_of_capacity_is_retried_in_the_next_ad_until_it_succeeds(make_runner, tmp_path: Path) -> None:
    events: list[Any] = []
    runner = make_runner("capacity", events=events)
    runner.init()
    clock = FakeClock(start=1000.0)
    guarded: list[dict] = []
    hunter = hunter_for(runner, capacity_vars(tmp_path, {"pve-1": 0, "pve-2": 2}), clock, guard=guarded.append)

    plan, applied = hunter.run()

    assert applied.ok
    outputs = runner.output()["instances"]
    assert outputs["pve-2"]["ad"] == "AD-3"  # AD-1 full, AD-2 full, AD-3 had room
    assert outputs["pve-1"]["ad"] == "AD-1"  # the instance that was created never moved
    assert attempts_of("pve-1", tmp_path) == 1  # ... and was never created again
    assert attempts_of("pve-2", tmp_path) == 3
    assert len(guarded) == 3  # every re-plan went through the guard
    assert hunter.failed_addresses == {'terraform_data.a1["pve-2"]'}

    tried = [e for e in events if isinstance(e, CapacityAttempt)]
    assert [t.attempt for t in tried] == [1, 2]
    assert [t.moves for t in tried] == [{"pve-2": ("AD-1", "AD-2")}, {"pve-2": ("AD-2", "AD-3")}]
    assert all("Out of host capacity" in t.message for t in tried)
    # Full jitter: each wait is within [0, base * 2^(attempt-1)].
    assert 0 <= clock.sleeps[0] <= 10 and 0 <= clock.sleeps[1] <= 20
    # The replanned resources: only the failed (tainted) instance was replaced.
    assert [rc["address"] for rc in plan.deletions()] == ['terraform_data.a1["pve-2"]']


def test_hunt_gives_up_at_the_deadline_and_keeps_what_exists(make_runner, tmp_path: Path) -> None:
    runner = make_runner("capacity")
    runner.init()
    clock = FakeClock(start=1000.0)
    hunter = hunter_for(runner, capacity_vars(tmp_path, {"pve-1": 0, "pve-2": 100}), clock, deadline=25)

    with pytest.raises(OperationError, match="no host capacity") as caught:
        hunter.run()

    assert "pve-2: tried AD-1, AD-2" in caught.value.message
    assert "created is kept" in (caught.value.hint or "")
    assert sum(clock.sleeps) <= 25 + 1e-9  # never waits past the deadline
    assert attempts_of("pve-1", tmp_path) == 1
    resources = {r["address"]: r for r in runner.state()["values"]["root_module"]["resources"]}
    assert resources['terraform_data.a1["pve-1"]']["values"]["output"] == "AD-1"
    assert not resources['terraform_data.a1["pve-1"]'].get("tainted")


class ScriptedRunner:
    """Stands in for TofuRunner: plans come from a script, applies fail for capacity first."""

    def __init__(self, plans: list[list[dict]], failures: int, tmp_path: Path) -> None:
        self.plans = plans
        self.failures = failures
        self.workdir = tmp_path
        self.emitted: list[Any] = []

    def plan(self) -> PlanResult:
        changes = self.plans.pop(0)
        return PlanResult(self.workdir / "p", {"resource_changes": changes}, ChangeCounts(), "", None)  # type: ignore[arg-type]

    def apply(self, plan: PlanResult):
        if self.failures:
            self.failures -= 1
            raise CapacityError("Out of host capacity", hint="", addresses=['oci_core_instance.a1["pve-2"]'])
        return "applied"

    def emit(self, event: Any) -> None:
        self.emitted.append(event)


def change(address: str, actions: list[str], reason: str | None = None) -> dict:
    rc: dict[str, Any] = {"address": address, "change": {"actions": actions}}
    if reason:
        rc["action_reason"] = reason
    return rc


def scripted_hunter(runner: ScriptedRunner, tmp_path: Path) -> CapacityHunter:
    variables = {"a1_instances": {"pve-1": {"availability_domain": "AD-1"}, "pve-2": {"availability_domain": "AD-1"}}}
    clock = FakeClock(start=1000.0)
    return CapacityHunter(
        runner,  # type: ignore[arg-type]
        variables=variables,
        tfvars_path=tmp_path / "vars.json",
        ad_candidates={"pve-1": ADS, "pve-2": ["AD-1"]},
        guard=lambda plan: None,
        deadline_seconds=600,
        clock=clock,
        sleep=clock.sleep,
    )


def test_a_replan_that_would_replace_an_existing_instance_is_refused(tmp_path: Path) -> None:
    plans = [
        [change('oci_core_instance.a1["pve-2"]', ["create"])],
        [change('oci_core_instance.a1["pve-1"]', ["delete", "create"], "replace_because_cannot_update")],
    ]
    hunter = scripted_hunter(ScriptedRunner(plans, failures=1, tmp_path=tmp_path), tmp_path)
    with pytest.raises(RefusedError, match=r'pve-1'):
        hunter.run()


def test_a_pinned_instance_is_retried_in_its_own_ad(tmp_path: Path) -> None:
    tainted = change('oci_core_instance.a1["pve-2"]', ["delete", "create"], "replace_because_tainted")
    runner = ScriptedRunner([[], [tainted], [tainted]], failures=2, tmp_path=tmp_path)
    hunter = scripted_hunter(runner, tmp_path)
    assert hunter.run()[1] == "applied"
    moves = [e.moves for e in runner.emitted]
    assert moves == [{"pve-2": ("AD-1", "AD-1")}, {"pve-2": ("AD-1", "AD-1")}]


def test_backoff_is_full_jitter_and_capped() -> None:
    backoff = Backoff(base_seconds=30, cap_seconds=100)
    rng = random.Random(1)
    for attempt in range(1, 12):
        bound = min(100, 30 * 2 ** (attempt - 1))
        samples = [backoff.delay(attempt, rng) for _ in range(50)]
        assert all(0 <= s <= bound for s in samples)
        assert max(samples) > bound / 2  # spread across the whole range, not a fixed delay


# -- issue 17 case 6: errors that belong to one AD move the hunt on; errors of the request stop it -------------

SHAPE_NOT_FOUND = "404-NotAuthorizedOrNotFound, shape VM.Standard.A1.Flex not found"  # hitrov/oci-arm-host-capacity #96, #142
NO_CAPACITY = "500-InternalError, Out of host capacity."


def ad_vars(tmp_path: Path, ad_errors: dict[str, str], start: str = "AD-1") -> dict[str, Any]:
    variables = capacity_vars(tmp_path, {"pve-1": 0, "pve-2": 0})
    variables["a1_instances"]["pve-1"]["availability_domain"] = "AD-3"
    variables["a1_instances"]["pve-2"]["availability_domain"] = start
    variables["ad_errors"] = ad_errors
    return variables


def test_an_ad_without_the_shape_is_dropped_and_the_hunt_goes_on(make_runner, tmp_path: Path) -> None:
    """The issue's example: AD-1 answers "shape … not found" (the AD does not offer A1 to this tenancy): the hunt
    drops AD-1 for the run with a line saying why, moves to AD-2 (out of capacity: moved on, kept), then AD-3."""
    events: list[Any] = []
    runner = make_runner("capacity", events=events)
    runner.init()
    clock = FakeClock(start=1000.0)
    hunter = hunter_for(runner, ad_vars(tmp_path, {"AD-1": SHAPE_NOT_FOUND, "AD-2": NO_CAPACITY}), clock)

    _, applied = hunter.run()

    assert applied.ok and runner.output()["instances"]["pve-2"]["ad"] == "AD-3"
    tried = [e for e in events if isinstance(e, CapacityAttempt)]
    assert [t.moves for t in tried] == [{"pve-2": ("AD-1", "AD-2")}, {"pve-2": ("AD-2", "AD-3")}]
    assert list(tried[0].dropped) == ["AD-1"] and "does not offer the shape" in tried[0].dropped["AD-1"]
    assert "dropping AD-1 for this run" in tried[0].message
    assert tried[1].dropped == {}  # out of host capacity moves on but keeps the AD
    assert hunter.dropped == {"a1_instances": {"AD-1": tried[0].dropped["AD-1"]}}


def test_a_dropped_ad_is_never_tried_again(make_runner, tmp_path: Path) -> None:
    """With AD-2 and AD-3 out of capacity, the hunt cycles between them until its deadline; AD-1 never returns."""
    events: list[Any] = []
    runner = make_runner("capacity", events=events)
    runner.init()
    clock = FakeClock(start=1000.0)
    hunter = hunter_for(runner, ad_vars(tmp_path, {"AD-1": SHAPE_NOT_FOUND, "AD-2": NO_CAPACITY, "AD-3": NO_CAPACITY},
                                        start="AD-1"), clock, deadline=90)
    hunter.variables["a1_instances"]["pve-1"]["availability_domain"] = "AD-2"  # pve-1 has room nowhere either
    with pytest.raises(OperationError, match="no host capacity"):
        hunter.run()
    targets = [new for e in events if isinstance(e, CapacityAttempt) for _, new in e.moves.values()]
    assert len(targets) >= 4 and "AD-1" not in targets


def test_when_no_ad_offers_the_shape_the_hunt_stops_with_the_cause(make_runner, tmp_path: Path) -> None:
    """The boundary: every AD answers "shape not found". A drop holds for every A1 instance (the shape is the AD's,
    not the instance's): pve-1 (AD-3) and pve-2 (AD-1) fail, both move to AD-2, fail, and nothing is left."""
    runner = make_runner("capacity")
    runner.init()
    clock = FakeClock(start=1000.0)
    errors = {ad: SHAPE_NOT_FOUND for ad in ADS}
    hunter = hunter_for(runner, ad_vars(tmp_path, errors), clock)
    with pytest.raises(OperationError, match="no availability domain is left for pve-") as caught:
        hunter.run()
    assert all(ad in caught.value.message for ad in ADS)
    assert "region" in (caught.value.hint or "")
    assert hunter.attempts == 2


@pytest.mark.parametrize(
    ("error", "cause", "fix"),
    [
        ("400-LimitExceeded, The following service limits were exceeded: standard-a1-core-count", "service limit", "shrink or remove"),
        ("401-NotAuthenticated, The required information to complete authentication was not provided or was incorrect.",
         "credentials", "~/.oci/config"),
        ("404-NotAuthorizedOrNotFound, image ocid1.image.oc1..aaaa not found", "image", "aarch64"),
        ("400-InvalidParameter, Invalid ShapeConfig: null (Cannot launch flexible instance without ShapeConfig)", "parameter", "correct"),
    ],
    ids=["limit", "auth", "bad-image", "invalid-parameter"],
)
def test_an_error_of_the_request_stops_the_hunt_at_once(make_runner, tmp_path: Path, error: str, cause: str, fix: str) -> None:
    """No AD accepts a request with bad credentials, over a limit, with a wrong image or parameter: stop at
    once (no wait, no move) with the cause and the fix (oci_errors.py, OCI docs "API Errors")."""
    runner = make_runner("capacity")
    runner.init()
    clock = FakeClock(start=1000.0)
    hunter = hunter_for(runner, ad_vars(tmp_path, {"AD-1": error}), clock)
    with pytest.raises(OperationError) as caught:
        hunter.run()
    assert not isinstance(caught.value, CapacityError)
    assert cause in caught.value.message and fix in (caught.value.hint or "")
    assert hunter.attempts == 0 and clock.sleeps == []
    assert attempts_of("pve-2", tmp_path) == 1
