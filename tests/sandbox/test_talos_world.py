"""The Talos stand-in's world document: nodes come back configured, bootstrapped or wiped as a
previous run (stopped or killed) left them, reached through the real client with the real
rendered configs and talosconfig."""

from __future__ import annotations

import base64
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyrage
import pytest

from tierzero.spec.models import Node
from tierzero.adapters.connections import Connections
from tierzero.adapters.talos import TalosClient
from tierzero.errors import OperationError
from tierzero.render.talos import client as render_client
from tierzero.render.talos import contract
from tierzero.render.talos import node as render_node
from tierzero.render.talos import secrets as render_secrets
from tierzero.sandbox import talos
from tierzero.sandbox.context import SandboxContext, SandboxOptions
from tierzero.sandbox.world import World

CP, WORKER = "10.20.0.11", "10.20.0.21"
SPEC_NODES = [("controlplane", "cp1", f"{CP}/24"), ("worker", "w1", f"{WORKER}/24")]


@pytest.fixture(scope="module")
def bundle() -> render_secrets.SecretsBundle:
    return render_secrets.generate_bundle()


@pytest.fixture
def identity() -> str:
    return str(pyrage.x25519.Identity.generate())


def config(bundle: render_secrets.SecretsBundle, hostname: str, role: str, address: str) -> bytes:
    common = render_node.ClusterInputs(name="homelab", endpoint="https://10.20.0.10:6443", talos_version=contract.DEFAULT_CONTRACT,
                                       kubernetes_version="1.34.1", secrets=bundle)
    node = render_node.NodeInputs(hostname=hostname, role=role, address=address, gateway="10.20.0.1", hardware_addr=mac_of(hostname))
    return render_node.render_node_config(common, node).encode()


IMAGE = {"schematic": "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba", "version": "v1.13.9", "platform": "nocloud",
         "arch": "amd64", "format": "qcow2", "extensions": [], "kernel_args": ["console=tty1", "console=ttyS0", "net.ifnames=0"]}


def mac_of(name: str) -> str:
    return "bc:24:11:00:00:" + format(sum(name.encode()) % 256, "02x")


class Run:
    """One sandbox run of the Talos stand-in: its factory started on a world directory, and a VM
    booted for every node that is not running yet (as the `guests` stand-in does when fakepve
    starts a VM): the nocloud image, no user-data, Proxmox's network-config with the node's IP."""

    def __init__(self, world_dir: Path, identity: str, nodes: list[tuple[str, str, str]]) -> None:
        spec_nodes = [(role, Node(name=name, node="pve1", ip=ip)) for role, name, ip in nodes]
        cluster = SimpleNamespace(name="homelab", nodes=lambda: spec_nodes, vip=None)
        self.world = World(world_dir, identity)
        self.box = SandboxContext(SimpleNamespace(clusters=[cluster]), None, Connections(target="sandbox"), world_dir,  # type: ignore[arg-type]
                                  options=SandboxOptions(talos_reboot_seconds=0.05), world=self.world)
        self._stop: Callable[[], None] | None = talos.STANDIN.start(self.box)
        machines = self.box[talos.MACHINES]
        for _role, name, ip in nodes:
            key = f"pve1/{name}"
            if not machines.running(key):
                network = [{"type": "physical", "name": "eth0", "mac_address": mac_of(name),
                            "subnets": [{"type": "static", "address": ip.split("/")[0], "netmask": "255.255.255.0"}]}]
                machines.boot(key, disk=f"local-lvm:vm-{name}-disk-0", image=IMAGE, macs=[mac_of(name)], user_data=None,
                              network_config=network, hostname=name)  # Proxmox's own user-data names the host

    def stop(self) -> None:
        if self._stop is not None:
            self._stop()
            self._stop = None

    @property
    def connections(self) -> Connections:
        return self.box.connections

    def node(self, address: str) -> Any:
        return next(n for n in self.box[talos.MACHINES].machines.values() if n.address == address)


@pytest.fixture
def runs(tmp_path: Path, identity: str) -> Iterator[Callable[..., Run]]:
    started: list[Run] = []

    def start(nodes: list[tuple[str, str, str]] = SPEC_NODES) -> Run:
        started.append(Run(tmp_path / "world", identity, nodes))
        return started[-1]

    yield start
    for run in started:
        run.stop()


async def configure_and_bootstrap(run: Run, bundle: render_secrets.SecretsBundle, talosconfig: str) -> None:
    for role, name, ip in SPEC_NODES:
        async with TalosClient.maintenance(ip.split("/")[0], connections=run.connections) as insecure:
            await insecure.apply_configuration(config(bundle, name, role, ip))
    async with TalosClient.authenticated(CP, talosconfig, connections=run.connections) as cp:
        await cp.wait_ready(10)
        assert await cp.bootstrap() is True


async def assert_restored(run: Run, talosconfig: str) -> None:
    """No waiting: a restored node answers with mutual TLS from the first call."""
    async with TalosClient.authenticated(CP, talosconfig, connections=run.connections) as cp:
        assert (await cp.version()).hostname == "cp1"
        assert [m.hostname for m in await cp.etcd_members()] == ["cp1"]
        assert await cp.bootstrap() is False  # ALREADY_EXISTS, as a real node answers
        assert await cp.unhealthy_services() == []
    async with TalosClient.authenticated(WORKER, talosconfig, connections=run.connections) as worker:
        assert (await worker.version()).hostname == "w1"
    async with TalosClient.maintenance(CP, connections=run.connections) as insecure:
        with pytest.raises(OperationError):  # no longer in maintenance mode: the admin certificate is required
            await insecure.version()
    assert run.node(CP).calls.count("Bootstrap") == 1


async def test_a_second_run_finds_nodes_configured_and_bootstrapped(runs, bundle) -> None:
    talosconfig = render_client.talosconfig(bundle, "homelab", [CP], [CP])
    first = runs()
    await configure_and_bootstrap(first, bundle, talosconfig)
    first.stop()

    second = runs()
    await assert_restored(second, talosconfig)
    assert second.box[talos.REGISTRY].clusters["homelab"].bootstrapped


async def test_a_killed_run_is_restored_from_what_it_saved(runs, bundle) -> None:
    talosconfig = render_client.talosconfig(bundle, "homelab", [CP], [CP])
    first = runs()  # never stopped before the second starts: its last saves are all there is
    await configure_and_bootstrap(first, bundle, talosconfig)
    await assert_restored(runs(), talosconfig)


async def test_nodes_the_spec_adds_start_in_maintenance(runs, bundle) -> None:
    talosconfig = render_client.talosconfig(bundle, "homelab", [CP], [CP])
    first = runs()
    await configure_and_bootstrap(first, bundle, talosconfig)
    first.stop()

    second = runs([*SPEC_NODES, ("worker", "w2", "10.20.0.22/24")])
    async with TalosClient.maintenance("10.20.0.22", connections=second.connections) as insecure:
        assert (await insecure.version()).hostname == "w2"
    await assert_restored(second, talosconfig)
    saved = second.world.file("talos").load()
    assert saved is not None and saved["machines"]["pve1/w2"]["config"] is None


async def test_a_wiped_node_comes_back_in_maintenance_and_etcd_is_gone_with_it(runs, bundle) -> None:
    talosconfig = render_client.talosconfig(bundle, "homelab", [CP], [CP])
    first = runs()
    await configure_and_bootstrap(first, bundle, talosconfig)
    async with TalosClient.authenticated(CP, talosconfig, connections=first.connections) as cp:
        await cp.reset(graceful=True, reboot=False)
    first.stop()

    second = runs()
    async with TalosClient.maintenance(CP, connections=second.connections) as insecure:
        assert (await insecure.version()).hostname == "cp1"
        await insecure.apply_configuration(config(bundle, "cp1", "controlplane", f"{CP}/24"))
    async with TalosClient.authenticated(CP, talosconfig, connections=second.connections) as cp:
        await cp.wait_ready(10)
        assert await cp.bootstrap() is True  # the last control plane's etcd data went with the reset


async def test_a_restored_worker_waits_for_its_control_plane_without_holding_up_the_start(runs, bundle) -> None:
    talosconfig = render_client.talosconfig(bundle, "homelab", [WORKER], [WORKER])
    first = runs()
    async with TalosClient.maintenance(WORKER, connections=first.connections) as insecure:
        await insecure.apply_configuration(config(bundle, "w1", "worker", f"{WORKER}/24"))
    first.stop()

    second = runs()  # the worker has no OS CA key of its own and no control plane to fetch it from yet
    async with TalosClient.maintenance(CP, connections=second.connections) as insecure:
        await insecure.apply_configuration(config(bundle, "cp1", "controlplane", f"{CP}/24"))
    async with TalosClient.authenticated(WORKER, talosconfig, connections=second.connections) as worker:
        assert (await worker.wait_ready(10)).hostname == "w1"


async def test_the_document_is_encrypted_private_and_holds_the_applied_config(runs, bundle, tmp_path, identity) -> None:
    run = runs()
    applied = config(bundle, "cp1", "controlplane", f"{CP}/24")
    async with TalosClient.maintenance(CP, connections=run.connections) as insecure:
        await insecure.apply_configuration(applied, dry_run=True)
    assert World(tmp_path / "world", identity).file("talos").load()["machines"]["pve1/cp1"]["config"] is None
    async with TalosClient.maintenance(CP, connections=run.connections) as insecure:
        await insecure.apply_configuration(applied)

    path = tmp_path / "world" / "talos.json.age"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    blob = path.read_bytes()
    ca_key = bundle.os_ca.key
    for secret in (ca_key, base64.b64encode(ca_key), b"PRIVATE KEY", b"homelab", b"cp1"):
        assert secret not in blob
    saved = World(tmp_path / "world", identity).file("talos").load()  # a fresh reader, as the next process is
    assert base64.b64decode(saved["machines"]["pve1/cp1"]["config"]) == applied
    assert saved["clusters"]["homelab"]["nodes"] == ["pve1/cp1"]
