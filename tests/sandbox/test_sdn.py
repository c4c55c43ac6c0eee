"""The sandbox's Proxmox SDN (tierzero.sandbox.pve_rules.sdn): pve-network's refusals, pending
configuration until PUT /cluster/sdn applies it, and a vnet a VM NIC can use only once applied."""

from __future__ import annotations

import pytest

from .pve_stock import Stock, refused, run_task, stock_fixture  # noqa: F401 - the "stock" fixture

pytestmark = pytest.mark.usefixtures("stock")


async def test_ids_peers_and_tags_are_checked_as_pve_network_does(stock: Stock) -> None:  # noqa: F811
    """pve-network 1.2.3 Zones/Plugin.pm 31-40, VnetPlugin.pm 30-39, Zones/VxlanPlugin.pm 155-166."""
    root = stock.root()
    # fakepve's schema check answers first, in its own words (PVE: "zone ID '<id>' contains illegal characters").
    for bad in ("tier_zero", "tierzero9"):
        err = await refused(root, "post", "cluster/sdn/zones", type="vxlan", zone=bad, peers="10.0.1.10")
        assert err.status == 400 and "'zone'" in str(err), bad
    err = await refused(root, "post", "cluster/sdn/zones", type="vxlan", zone="tz")
    assert err.status == 400 and "must have exactly one of peers / fabric defined" in str(err)
    await root.call("post", "cluster/sdn/zones", type="vxlan", zone="tz", peers="10.0.1.10,10.0.1.11", mtu=1450)
    err = await refused(root, "post", "cluster/sdn/zones", type="vxlan", zone="tz", peers="10.0.1.10")
    assert "sdn zone object ID 'tz' already defined" in str(err)
    err = await refused(root, "post", "cluster/sdn/vnets", vnet="vmbr1", zone="tz")
    assert err.status == 400 and "missing vxlan tag" in str(err)


async def test_a_vnet_is_a_bridge_only_after_the_apply(stock: Stock) -> None:  # noqa: F811
    root = stock.root()
    await root.call("post", "cluster/sdn/zones", type="vxlan", zone="tz", peers="192.168.10.11,192.168.10.12", mtu=1450)
    await root.call("post", "cluster/sdn/vnets", vnet="vmbr1", zone="tz", tag=10010)
    await run_task(root, "post", "nodes/pve1/qemu", vmid=205, name="t", memory=512, kvm=0, net0="virtio,bridge=vmbr1")
    # pending only: QEMU's network script finds no bridge (qemu-server 9.1.0 vm_start_nolock 5767/5809; the bridge line is in the task log)
    assert await run_task(root, "post", "nodes/pve1/qemu/205/status/start") == "start failed: QEMU exited with code 1"
    listed = {i["iface"] for i in await root.call("get", "nodes/pve1/network", type="any_bridge")}
    assert "vmbr1" not in listed
    assert await run_task(root, "put", "cluster/sdn") == "OK"
    bridges = {i["iface"]: i for i in await root.call("get", "nodes/pve1/network", type="any_bridge")}
    assert bridges["vmbr1"]["type"] == "vnet" and bridges["vmbr1"]["mtu"] == 1450
    assert "vmbr1" not in {i["iface"] for i in await root.call("get", "nodes/pve1/network", type="bridge")}
    assert await run_task(root, "post", "nodes/pve1/qemu/205/status/start") == "OK"


async def test_a_token_needs_sdn_allocate(stock: Stock) -> None:  # noqa: F811
    """apidata.json (pve-docs 9.1.3): POST /cluster/sdn/zones checks SDN.Allocate on /sdn/zones."""
    client = await stock.token("nosdn", role="NoSdn", privs="Sys.Audit")
    err = await refused(client, "post", "cluster/sdn/zones", type="vxlan", zone="tz", peers="10.0.1.10")
    assert err.status == 403 and "/sdn/zones, SDN.Allocate" in str(err)
