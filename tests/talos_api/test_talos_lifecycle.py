"""Maintenance apply -> reboot -> mutual TLS, over real gRPC and TLS on loopback."""

from __future__ import annotations

import asyncio

import pytest
import yaml

from tierzero.adapters.talos import TalosClient, TalosNotImplemented
from tierzero.errors import OperationError


@pytest.mark.parametrize("ca_kind", ["ed25519", "ecdsa"])
async def test_maintenance_apply_then_authenticated_calls(ca_kind, start, connections, make_pki) -> None:
    pki = make_pki(f"lab-{ca_kind}", ca_kind)
    node = await start("10.10.0.11", kubeconfig=lambda cluster, addr: f"# kubeconfig for {cluster} via {addr}\n")

    async with TalosClient.maintenance("10.10.0.11", connections=connections) as insecure:
        with pytest.raises(TalosNotImplemented, match="API is not implemented in maintenance mode"):
            await insecure.version()  # Talos <= 1.12: Version is admin-only in maintenance mode
        with pytest.raises(OperationError) as err:
            await insecure.services()
        assert "UNIMPLEMENTED: method ServiceList not implemented" in err.value.message and "maintenance" in (err.value.hint or "")
        result = await insecure.apply_configuration(pki.machine_config("controlplane", hostname="cp1"))
        assert result.mode == "reboot"

    talosconfig = pki.talosconfig(["10.10.0.11"])
    retries: list[str] = []
    async with TalosClient.authenticated("10.10.0.11", talosconfig, connections=connections) as client:
        version = await client.wait_ready(10, on_retry=lambda attempt, cause, delay: retries.append(cause))
        assert version.hostname == "cp1"
        assert retries, "the node was rebooting: the first attempts should have been refused"
        assert await client.unhealthy_services() == ["etcd: Preparing"]
        assert await client.bootstrap() is True
        assert await client.bootstrap() is False  # idempotent: already bootstrapped
        await client.wait_services(timeout=5)
        members = await client.etcd_members()
        assert [m.hostname for m in members] == ["cp1"]
        assert members[0].peer_urls == ("https://10.10.0.11:2380",)
        kubeconfig = await client.kubeconfig()
        assert kubeconfig == f"# kubeconfig for lab-{ca_kind} via 10.10.0.11\n".encode()
    assert node.calls.count("Bootstrap") == 2


async def test_default_kubeconfig_is_yaml_and_streamed_in_chunks(pki, start, connections) -> None:
    await start("10.10.0.21")
    async with TalosClient.maintenance("10.10.0.21", connections=connections) as insecure:
        await insecure.apply_configuration(pki.machine_config("init"))
    async with TalosClient.authenticated("10.10.0.21", pki.talosconfig(["10.10.0.21"]), connections=connections) as client:
        await client.wait_ready(10)
        doc = yaml.safe_load(await client.kubeconfig())
        assert doc["clusters"][0]["cluster"]["server"] == "https://10.10.0.21:6443"


async def test_bootstrap_exactly_once_across_three_control_planes(pki, start, connections, registry) -> None:
    addresses = ["10.10.0.31", "10.10.0.32", "10.10.0.33"]
    for i, address in enumerate(addresses):
        await start(address, hostname=f"cp{i + 1}")

    async def configure(address: str) -> None:
        async with TalosClient.maintenance(address, connections=connections) as insecure:
            await insecure.apply_configuration(pki.machine_config("controlplane"))

    await asyncio.gather(*(configure(a) for a in addresses))
    talosconfig = pki.talosconfig(addresses)
    clients = [TalosClient.authenticated(a, talosconfig, connections=connections) for a in addresses]
    try:
        await asyncio.gather(*(c.wait_ready(10) for c in clients))
        outcomes = await asyncio.gather(*(c.bootstrap() for c in clients))
        assert sorted(outcomes) == [False, False, True]
        assert registry.clusters["alpha"].bootstrapped
        for c in clients:
            assert sorted(m.hostname for m in await c.etcd_members()) == ["cp1", "cp2", "cp3"]
    finally:
        for c in clients:
            await c.close()

    # one endpoint, another node targeted with the `nodes` header
    async with TalosClient.authenticated("10.10.0.31", talosconfig, connections=connections, node="10.10.0.33") as via:
        assert (await via.version()).hostname == "cp3"


async def test_worker_comes_up_once_a_control_plane_holds_the_os_ca_key(pki, start, connections) -> None:
    await start("10.10.0.41", hostname="w1")
    await start("10.10.0.42", hostname="cp")
    async with TalosClient.maintenance("10.10.0.41", connections=connections) as insecure:
        await insecure.apply_configuration(pki.machine_config("worker"))
    talosconfig = pki.talosconfig(["10.10.0.42"])
    async with TalosClient.authenticated("10.10.0.41", talosconfig, connections=connections) as worker:
        with pytest.raises(OperationError, match="not ready after"):
            await worker.wait_ready(0.8)  # no control plane yet: trustd cannot issue its certificate
        async with TalosClient.maintenance("10.10.0.42", connections=connections) as insecure:
            await insecure.apply_configuration(pki.machine_config("controlplane"))
        assert (await worker.wait_ready(10)).hostname == "w1"
        assert await worker.unhealthy_services(("apid", "kubelet")) == []
        with pytest.raises(OperationError, match="FAILED_PRECONDITION"):
            await worker.bootstrap()


async def test_reset_returns_the_node_to_maintenance(pki, start, connections, registry) -> None:
    await start("10.10.0.51")
    async with TalosClient.maintenance("10.10.0.51", connections=connections) as insecure:
        await insecure.apply_configuration(pki.machine_config("controlplane"))
    async with TalosClient.authenticated("10.10.0.51", pki.talosconfig(["10.10.0.51"]), connections=connections) as c:
        await c.wait_ready(10)
        assert await c.bootstrap() is True
        await c.reset(graceful=True, reboot=True)
    assert "alpha" not in registry.clusters
    async with TalosClient.maintenance("10.10.0.51", connections=connections) as insecure:
        with pytest.raises(TalosNotImplemented, match="method EtcdMemberList not implemented"):
            await insecure.retrying(insecure.etcd_members, timeout=10)  # answered once it is back, in maintenance mode


async def test_reapply_on_a_configured_node_goes_through_the_authenticated_api(pki, start, connections) -> None:
    node = await start("10.10.0.61", hostname="cp")
    async with TalosClient.maintenance("10.10.0.61", connections=connections) as insecure:
        await insecure.apply_configuration(pki.machine_config("controlplane"))
        await node.settled()  # rebooted into its configuration
        with pytest.raises(OperationError) as err:
            await insecure.retrying(insecure.version, timeout=60)
        assert "no longer in maintenance" in (err.value.hint or "")
    async with TalosClient.authenticated("10.10.0.61", pki.talosconfig(["10.10.0.61"]), connections=connections) as c:
        await c.wait_ready(10)
        result = await c.apply_configuration(pki.machine_config("controlplane"), mode="auto")
        assert result.mode == "no_reboot"
        assert (await c.apply_configuration(pki.machine_config("controlplane"), dry_run=True)).details.startswith("Dry run")
    assert node.calls.count("ApplyConfiguration") == 3
