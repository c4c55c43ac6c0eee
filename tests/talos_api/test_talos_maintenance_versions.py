"""Maintenance mode as each Talos release serves it to a caller without a client certificate
(rules and sources: the docstring of tierzero.sandbox.talos.rpc), and refusals on a configured
node, over real gRPC and TLS on loopback."""

from __future__ import annotations

import pytest

from tierzero.adapters.talos import TalosClient, TalosNotImplemented
from tierzero.errors import OperationError


@pytest.mark.parametrize("version", ["v1.9.0", "v1.11.6", "v1.12.11"])
async def test_talos_up_to_1_12_refuses_version_and_admin_calls_in_maintenance(version, start, connections) -> None:
    node = await start("10.10.2.11", version=version)
    async with TalosClient.maintenance("10.10.2.11", connections=connections) as insecure:
        with pytest.raises(TalosNotImplemented, match="UNIMPLEMENTED: API is not implemented in maintenance mode$"):
            await insecure.version()
        with pytest.raises(TalosNotImplemented, match="UNIMPLEMENTED: API is not implemented in maintenance mode$"):
            await insecure.reset()
        with pytest.raises(TalosNotImplemented, match="UNIMPLEMENTED: method Bootstrap not implemented$"):
            await insecure.bootstrap()
        with pytest.raises(TalosNotImplemented, match="UNIMPLEMENTED: method Kubeconfig not implemented$"):
            await insecure.kubeconfig()
    assert node.maintenance


@pytest.mark.parametrize("mode, name", [("no_reboot", "no-reboot"), ("staged", "staged")])
async def test_talos_up_to_1_12_refuses_no_reboot_and_staged_apply_in_maintenance(mode, name, pki, start, connections) -> None:
    node = await start("10.10.2.21", version="v1.12.11")
    async with TalosClient.maintenance("10.10.2.21", connections=connections) as insecure:
        with pytest.raises(TalosNotImplemented) as err:
            await insecure.apply_configuration(pki.machine_config("controlplane"), mode)  # type: ignore[arg-type]
    assert err.value.message.endswith(f"UNIMPLEMENTED: apply configuration --mode='{name}' is not supported in maintenance mode")
    assert node.maintenance  # nothing applied


async def test_talos_up_to_1_12_maintenance_apply_and_dry_run_answers(pki, start, connections) -> None:
    node = await start("10.10.2.31", version="v1.12.11")
    async with TalosClient.maintenance("10.10.2.31", connections=connections) as insecure:
        dry = await insecure.apply_configuration(pki.machine_config("controlplane"), "auto", dry_run=True)
        assert dry.details == "Dry run summary:\nNode is running in maintenance mode and does not have a config yet."
        assert node.maintenance
        applied = await insecure.apply_configuration(pki.machine_config("controlplane"), "try")
    assert (applied.mode, applied.details) == ("reboot", "")  # the maintenance server sets neither
    assert not node.maintenance


async def test_talos_1_13_answers_version_and_refuses_admin_calls_as_not_authorized(pki, start, connections) -> None:
    node = await start("10.10.2.41", version="v1.13.9", hostname="cp")
    async with TalosClient.maintenance("10.10.2.41", connections=connections) as insecure:
        assert (await insecure.version()).tag == "v1.13.9"
        for call in (insecure.bootstrap, insecure.kubeconfig, insecure.reset):
            with pytest.raises(OperationError) as err:
                await call()
            assert err.value.message.endswith("PERMISSION_DENIED: not authorized")
        with pytest.raises(OperationError, match="UNKNOWN: sandbox: ServiceList on a node in maintenance mode is not modelled"):
            await insecure.services()  # allowed to Reader; the stand-in says it does not know the answer
        result = await insecure.apply_configuration(pki.machine_config("controlplane"), "staged")  # allowed from 1.13 on
    assert (result.mode, result.details) == ("staged", "Staged configuration to be applied after the next reboot")
    assert not node.maintenance


async def test_talos_1_13_maintenance_apply_reboot_becomes_no_reboot(pki, start, connections) -> None:
    await start("10.10.2.51", version="v1.13.0")
    async with TalosClient.maintenance("10.10.2.51", connections=connections) as insecure:
        result = await insecure.apply_configuration(pki.machine_config("controlplane"), "reboot")
    assert (result.mode, result.details) == ("no_reboot", "Applied configuration without a reboot")


async def test_worker_refusals_on_a_configured_node(pki, start, connections) -> None:
    """v1.12.11 v1alpha1_server.go: Bootstrap FailedPrecondition; Kubeconfig and EtcdMemberList
    checkControlplane (Unimplemented)."""
    await start("10.10.2.61", hostname="cp")
    await start("10.10.2.62", hostname="w1")
    for address, kind in (("10.10.2.61", "controlplane"), ("10.10.2.62", "worker")):
        async with TalosClient.maintenance(address, connections=connections) as insecure:
            await insecure.apply_configuration(pki.machine_config(kind))
    async with TalosClient.authenticated("10.10.2.62", pki.talosconfig(["10.10.2.62"]), connections=connections) as worker:
        await worker.wait_ready(10)
        with pytest.raises(OperationError) as err:
            await worker.bootstrap()
        assert err.value.message.endswith("FAILED_PRECONDITION: bootstrap can only be performed on a control plane node")
        with pytest.raises(TalosNotImplemented, match="kubeconfig is only available on control plane nodes$"):
            await worker.kubeconfig()
        with pytest.raises(TalosNotImplemented, match="member list is only available on control plane nodes$"):
            await worker.etcd_members()
