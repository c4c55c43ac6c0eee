"""The sandbox harness: builtin stand-ins, the registration API, and validation rows."""

from __future__ import annotations

import asyncio
from importlib import resources
from pathlib import Path

import pytest
import yaml

from tierzero.adapters.connections import Endpoint
from tierzero.adapters.kubernetes import Kube
from tierzero.engine.step import StepContext
from tierzero.phases import validate
from tierzero.sandbox import Sandbox, SandboxContext, register
from tierzero.sandbox.harness import _FACTORIES
from tierzero.spec import Platform
from tierzero.workspace import Workspace


def _spec(**ceph: object) -> Platform:
    data = yaml.safe_load(resources.files("tierzero.spec").joinpath("blueprints/oci-free-tier.yaml").read_text())
    if ceph:
        data["hypervisors"]["proxmox"]["ceph"] = {"enabled": True, "osd_lv_size_gb": 10}
    return Platform.model_validate(data)


def test_register_and_start_stop(tmp_path: Path) -> None:
    started: list[str] = []

    def factory(box: SandboxContext) -> object:
        for node in box.spec.proxmox.nodes:
            box.connections.add("ssh", node.name, Endpoint("127.0.0.1", 1, scheme="ssh"))
        started.append("up")
        return lambda: started.append("down")

    register("test-hosts", factory)
    try:
        box = Sandbox(_spec(), Workspace(tmp_path / ".tierzero"), only_for_test=True)
        with box as conns:
            assert conns.target == "sandbox" and started == ["up"]
            assert conns.endpoint("ssh", "pve2").scheme == "ssh"
            assert conns.endpoint("kubernetes", "main").host == "127.0.0.1"
            assert conns.endpoint("oci", "default").port > 0
            kube = Kube.connect(conns, "main")
            assert sorted(n.name for n in kube.nodes()) == ["cp-1", "cp-2", "cp-3"]
        assert started == ["up", "down"]
    finally:
        _FACTORIES.pop("test-hosts", None)


def _ctx(spec: Platform, conns: object, outputs: dict) -> StepContext:
    return StepContext(spec=spec, workspace=None, target="sandbox", connections=conns, secrets=None, outputs=outputs)  # type: ignore[arg-type]


def test_validation_rows_pass_and_fail(tmp_path: Path) -> None:
    spec = _spec(ceph=True)
    with Sandbox(spec, Workspace(tmp_path / ".tierzero")) as conns:
        good = {"hypervisors/summary": {"quorate": True, "members": ["pve1", "pve2"], "ceph_health": "HEALTH_OK"},
                "platform/bootstrap": {"etcd_members": ["cp-1", "cp-2", "cp-3"], "talos_nodes": ["cp-1", "cp-2", "cp-3"]}}
        rows = {r.check: r for r in asyncio.run(validate.run_checks(_ctx(spec, conns, good)))}
        assert {r.status for r in rows.values()} == {"pass"}, rows
        bad = {"hypervisors/summary": {"quorate": False, "members": ["pve1"], "ceph_health": "HEALTH_WARN", "ceph_reasons": ["1 osd down"]},
               "platform/bootstrap": {"etcd_members": ["cp-1"]}}
        rows = {r.check: r for r in asyncio.run(validate.run_checks(_ctx(spec, conns, bad)))}
        assert rows["Proxmox quorum"].status == "fail" and "pve1" in rows["Proxmox quorum"].evidence
        assert rows["Ceph health"].status == "fail" and "1 osd down" in rows["Ceph health"].evidence
        assert rows["etcd members"].status == "fail" and rows["Talos nodes"].status == "skip"


def test_validate_step_fails_with_every_failed_row(tmp_path: Path) -> None:
    spec = _spec()
    with Sandbox(spec, Workspace(tmp_path / ".tierzero")) as conns:
        conns.endpoints.pop(("kubernetes", "main"))  # a check that cannot reach its API fails, it does not crash
        step = validate.steps(spec)[0]
        with pytest.raises(Exception, match="validation failed: check_kubernetes|validation failed: kubernetes"):
            asyncio.run(step.run(_ctx(spec, conns, {"hypervisors/summary": {"quorate": True, "members": ["pve1", "pve2"]}})))
