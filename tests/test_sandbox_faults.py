"""The whole sandbox pipeline under injected faults: transient ones (A1 "Out of host capacity",
Proxmox 5xx and dropped connections, the Kubernetes API not up yet, Talos rebooting after its
config) end in a finished deploy; permanent ones stop with the step, the cause and a remedy."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tierzero.engine.runner import StepFailed
from tierzero.cli.session import Session
from tierzero.sandbox import fakepve

from sandbox_runs import Events, starter_project

pytestmark = pytest.mark.slow

def test_transient_faults_in_every_layer_still_end_in_a_running_platform(tmp_path: Path) -> None:
    spec_path = starter_project(tmp_path)
    events = Events()
    session = Session(spec_path, "sandbox", emit=events, sandbox_options={
        "oci_full_ads": ["Uocm:EU-FRANKFURT-1-AD-1"],  # where every instance is first placed
        "kube_fail_first": 4,
    })
    with session as runner:
        pve = session.sandbox.context[fakepve.SERVER].pve
        pve.fail("POST", "/qemu", 503, "proxy: backend unavailable", times=2)
        pve.flaky_network(drop_rate=0.08, seed=11)
        asyncio.run(runner.run())
        records = runner.state.records()

    assert {r.status for r in records.values()} == {"done"}
    cloud = records["cloud/oci"].outputs
    assert cloud["capacity_retries"] >= 1
    assert {i["availability_domain"] for i in cloud["instances"].values()} == {"Uocm:EU-FRANKFURT-1-AD-2"}
    assert events.of("retry", "cloud/") and "Out of host capacity" in events.of("retry", "cloud/")[0]["cause"]
    assert events.of("retry", "platform/") or events.of("retry", "hypervisors/")  # the 503s and resets were retried
    assert records["validate/checks"].outputs["rows"]

    # The hunt moved the instances: the next run keeps them where they landed (no replacement).
    events.clear()
    with Session(spec_path, "sandbox", emit=events) as runner:
        runner.state.forget("cloud/oci")
        asyncio.run(runner.run())
        again = runner.state.records()["cloud/oci"].outputs
    assert again["capacity_retries"] == 0 and again["instances"] == cloud["instances"]


def test_capacity_that_never_comes_stops_the_cloud_step_with_a_remedy(tmp_path: Path) -> None:
    spec_path = starter_project(tmp_path)
    ads = [f"Uocm:EU-FRANKFURT-1-AD-{i}" for i in (1, 2, 3)]
    session = Session(spec_path, "sandbox", sandbox_options={"oci_full_ads": ads})
    with session as runner:
        runner.connections.cloud.capacity_hunt_seconds = 0.5
        with pytest.raises(StepFailed) as failed:
            asyncio.run(runner.run())
        records = runner.state.records()
    assert failed.value.step_id == "cloud/oci"
    assert "capacity" in failed.value.cause.lower() and failed.value.hint
    assert records["cloud/oci"].status == "failed" and "hypervisors/summary" not in records


def test_a_permanent_proxmox_refusal_names_the_step_and_cause(tmp_path: Path) -> None:
    spec_path = starter_project(tmp_path)
    session = Session(spec_path, "sandbox")
    with session as runner:
        session.sandbox.context[fakepve.SERVER].pve.fail("POST", "/qemu", 403, "Permission check failed (/vms/1000, VM.Allocate)")
        with pytest.raises(StepFailed) as failed:
            asyncio.run(runner.run())
    assert failed.value.step_id.startswith("platform/main/vm/")
    assert "Permission check failed" in failed.value.cause
