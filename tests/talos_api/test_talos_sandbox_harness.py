"""The sandbox harness factory: stand-in nodes on their own thread, reached from the test's loop."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import yaml

from tierzero.spec.models import Node
from tierzero.adapters.connections import Connections
from tierzero.adapters.talos import TalosClient
from tierzero.sandbox import kubernetes, talos
from tierzero.sandbox.context import SandboxContext, SandboxOptions


def _box(tmp_path: Path) -> SandboxContext:
    nodes = [("controlplane", Node(name="cp1", node="pve1", ip="10.30.0.11/24")),
             ("worker", Node(name="w1", node="pve1"))]
    cluster = SimpleNamespace(name="lab", nodes=lambda: nodes)
    box = SandboxContext(SimpleNamespace(clusters=[cluster]), None, Connections(target="sandbox"), tmp_path,  # type: ignore[arg-type]
                         options=SandboxOptions(talos_reboot_seconds=0.1))
    box.put(kubernetes.SERVERS, {"lab": SimpleNamespace(url="http://127.0.0.1:6555")})  # type: ignore[dict-item]
    return box


async def test_factory_starts_one_node_per_spec_node(pki, tmp_path: Path) -> None:
    box = _box(tmp_path)
    stop = talos.STANDIN.start(box)
    try:
        assert {name for kind, name in box.connections.endpoints if kind == "talos"} == {"10.30.0.11", "cp1", "w1"}
        async with TalosClient.maintenance("10.30.0.11", connections=box.connections) as insecure:
            await insecure.apply_configuration(pki.machine_config("controlplane"))
        async with TalosClient.authenticated("cp1", pki.talosconfig(["10.30.0.11"]), connections=box.connections) as c:
            assert (await c.wait_ready(10)).hostname == "cp1"
            assert await c.bootstrap() is True
            kubeconfig = yaml.safe_load(await c.kubeconfig())
        assert kubeconfig["clusters"][0]["cluster"]["server"] == "http://127.0.0.1:6555"
        assert box[talos.REGISTRY].clusters["alpha"].bootstrapped
    finally:
        stop()
