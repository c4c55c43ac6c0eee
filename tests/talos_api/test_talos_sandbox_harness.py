"""The sandbox's Talos stand-in: the spec's addresses answer nothing until a VM boots a Talos image
there; then the machine runs on the stand-in's own thread, reached from the test's loop."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from tierzero.spec.models import Node
from tierzero.adapters.connections import Connections
from tierzero.adapters.talos import TalosClient, TalosNotImplemented, TalosUnavailable
from tierzero.sandbox import kubernetes, talos
from tierzero.sandbox.context import SandboxContext, SandboxOptions


def _box(tmp_path: Path) -> SandboxContext:
    nodes = [("controlplane", Node(name="cp1", node="pve1", ip="10.30.0.11/24")),
             ("worker", Node(name="w1", node="pve1"))]
    cluster = SimpleNamespace(name="alpha", nodes=lambda: nodes, vip=None)  # the name its machine configs carry
    box = SandboxContext(SimpleNamespace(clusters=[cluster]), None, Connections(target="sandbox"), tmp_path,  # type: ignore[arg-type]
                         options=SandboxOptions(talos_reboot_seconds=0.1))
    box.put(kubernetes.SERVERS, {"alpha": SimpleNamespace(url="http://127.0.0.1:6555")})  # type: ignore[dict-item]
    return box


IMAGE = {"version": "v1.12.11", "platform": "nocloud", "arch": "amd64", "extensions": [],
         "kernel_args": ["console=tty1", "console=ttyS0", "net.ifnames=0"]}


async def test_the_spec_addresses_answer_once_a_vm_boots_there(pki, tmp_path: Path) -> None:
    box = _box(tmp_path)
    stop = talos.STANDIN.start(box)
    try:
        # The network knows the spec's static addresses (a dhcp node has none to reach it at).
        assert {name for kind, name in box.connections.endpoints if kind == "talos"} == {"10.30.0.11", "cp1"}
        with pytest.raises(TalosUnavailable):  # no VM runs there yet
            async with TalosClient.maintenance("10.30.0.11", connections=box.connections, call_timeout=2.0) as nobody:
                await nobody.version(timeout=2.0)
        network = [{"type": "physical", "mac_address": "bc:24:11:00:00:11", "subnets": [{"type": "static", "address": "10.30.0.11/24"}]}]
        box[talos.MACHINES].boot("pve1/100", disk="local-lvm:vm-100-disk-0", image=IMAGE, macs=["BC:24:11:00:00:11"], user_data=None,
                                 network_config=network, hostname="cp1")
        async with TalosClient.maintenance("10.30.0.11", connections=box.connections) as insecure:
            with pytest.raises(TalosNotImplemented):  # a 1.12 node in maintenance mode: Version is admin-only
                await insecure.version()
            await insecure.apply_configuration(pki.machine_config("controlplane"))
        async with TalosClient.authenticated("cp1", pki.talosconfig(["10.30.0.11"]), connections=box.connections) as c:
            assert (await c.wait_ready(10)).hostname == "cp1"
            assert await c.bootstrap() is True
            kubeconfig = yaml.safe_load(await c.kubeconfig())
        assert kubeconfig["clusters"][0]["cluster"]["server"] == "http://127.0.0.1:6555"
        assert box[talos.REGISTRY].clusters["alpha"].bootstrapped
    finally:
        stop()
