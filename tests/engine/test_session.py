"""Real-target wiring: endpoints from the spec, endpoints published by steps, cost checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any


from tierzero.cli.session import kubeconfig_path, real_connections
from tierzero.engine.step import Step, StepContext
from tierzero.phases import validate
from tierzero.sandbox import oci
from tierzero.sandbox.harness import Sandbox
from tierzero.spec import Platform
from tierzero.workspace import Workspace
from spec_builder import build_spec

from engine_helpers import make_runner


def _spec(blueprint: str = "oci-free-tier") -> Platform:
    return build_spec(blueprint)


def test_real_connections_from_the_spec(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / ".tierzero")
    spec = _spec()
    conns = real_connections(spec, ws)
    kube = conns.endpoint("kubernetes", "main")
    assert (kube.host, kube.port) == ("10.10.0.10", 6443) and kube.extra["kubeconfig"] == str(kubeconfig_path(ws, "main"))
    assert conns.endpoint("talos", "10.10.0.11").port == 50000
    assert conns.endpoint("oci", "default").extra["service_endpoint"] is False
    own = _spec("proxmox")
    conns = real_connections(own, ws)
    first = own.proxmox.nodes[0]
    assert conns.endpoint("ssh", first.name).host == str(first.address)
    assert conns.endpoint("proxmox", first.name).port == 8006


async def test_steps_publish_endpoints_on_a_real_run(tmp_path: Path) -> None:
    async def cloud(ctx: StepContext, _inputs: Any = None) -> dict:
        return {"endpoints": [{"kind": "ssh", "name": "pve1", "host": "192.0.2.10", "port": 22, "scheme": "ssh"}]}

    seen: list[str] = []

    async def host(ctx: StepContext, _inputs: Any = None) -> dict:
        seen.append(ctx.connections.endpoint("ssh", "pve1").host)
        return {}

    from tierzero.adapters.connections import Connections

    steps = [Step("cloud/oci", "cloud", "", cloud), Step("hypervisors/x", "hypervisors", "", host, needs=("cloud/oci",))]  # type: ignore[arg-type]
    runner = make_runner(tmp_path, steps, target="real")
    runner.connections = Connections(target="real")
    await runner.run()
    assert seen == ["192.0.2.10"]
    again = make_runner(tmp_path, steps, target="real")  # a later run learns them from the state
    again.connections = Connections(target="real")
    again.context_from_state("hypervisors/x")
    assert again.connections.endpoint("ssh", "pve1").host == "192.0.2.10"


def test_cost_above_zero_fails_its_row(tmp_path: Path) -> None:
    spec = _spec()
    box = Sandbox(spec, Workspace(tmp_path / ".tierzero"))
    conns = box.start(only=["oci"])
    try:
        box.context[oci.SERVER].state.cost = 0.37
        ctx = StepContext(spec=spec, workspace=None, target="sandbox", connections=conns, secrets=None, outputs={})  # type: ignore[arg-type]
        rows = {r.check: r for r in validate.check_oci(ctx)}
        assert rows["cost this month"].status == "fail" and rows["cost this month"].evidence == "0.37 USD"
        assert rows["OCI instances running"].status == "pass"
    finally:
        box.stop()
