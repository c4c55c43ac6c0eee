"""Timings of the cloud layer's twin through the real runner (run with --benchmark-enable)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tierzero.adapters.tofu import TofuRunner, find_binary
from tierzero.adapters.tofu_workspace import TFVARS_FILE, stage_layer, write_json

VARS = {
    "name_prefix": "bench",
    "region": "eu-frankfurt-1",
    "tenancy_ocid": "ocid1.tenancy.oc1..bench",
    "admin_cidrs": ["203.0.113.7/32"],
    "ssh_authorized_keys": "ssh-ed25519 AAAAbench bench",
    "budget_alert_email": "bench@example.com",
    "a1_instances": {
        f"a1-{i}": {"ocpus": 1, "memory_gb": 6, "boot_volume_gb": 50, "availability_domain": "AD-1"} for i in (1, 2)
    },
    "micro_instances": {"bastion": {"roles": ["bastion"], "boot_volume_gb": 50, "availability_domain": "AD-1"}},
    "reserved_ips": {"bastion-ip": {"instance": "bastion"}},
}


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    try:
        binary = find_binary()
    except Exception as exc:  # a benchmark without the binary is meaningless
        pytest.fail(str(exc))
    workdir = tmp_path_factory.mktemp("twin-template")
    stage_layer("oci_twin", workdir)
    write_json(workdir / TFVARS_FILE, VARS)
    TofuRunner(workdir, binary=binary).init()
    return workdir


def fresh(template: Path, tmp_path: Path, n: list[int]) -> TofuRunner:
    n[0] += 1
    workdir = tmp_path / f"run-{n[0]}"
    shutil.copytree(template, workdir, symlinks=True, ignore=shutil.ignore_patterns(".tierzero-logs"))
    return TofuRunner(workdir, binary=find_binary())


def test_twin_apply_from_empty_state(benchmark, template: Path, tmp_path: Path) -> None:
    counter = [0]
    result = benchmark.pedantic(
        lambda runner: runner.plan_guard_apply(lambda plan: None),
        setup=lambda: ((fresh(template, tmp_path, counter),), {}),
        rounds=5,
    )
    assert result[0].changes.add > 0


def test_twin_noop_plan(benchmark, template: Path, tmp_path: Path) -> None:
    runner = fresh(template, tmp_path, [100])
    runner.plan_guard_apply(lambda plan: None)
    plan = benchmark.pedantic(runner.plan, rounds=5)
    assert plan.changes.is_noop
