"""What a step cannot do, it says before it starts: `hypervisors/capabilities` checks the API
token's privileges, the storages, the bridge, free memory and the Image Factory from the hosts on
a stock install, reports every problem at once, each with the setting and the command that fixes
it; and `hypervisors/storage-content` enables what the image storage lacks through the API."""

from __future__ import annotations

import pytest

from tierzero.engine.runner import StepFailed
from tierzero.phases import hypervisors

from .conftest import blueprint


def onprem() -> dict:
    data = blueprint("proxmox.yaml")
    data["hypervisors"]["proxmox"]["ceph"]["enabled"] = False
    return data


async def failing(box) -> StepFailed:
    with pytest.raises(StepFailed) as err:
        await box.run(hypervisors.steps(box.spec))
    assert err.value.step_id == "hypervisors/capabilities"
    assert not box.pve.requests_matching("PUT", "/storage/")  # nothing was changed before the check said no
    return err.value


async def test_a_stock_install_passes_and_gets_the_content_it_lacks(make_sandbox):
    box = make_sandbox(onprem())
    await box.run(hypervisors.steps(box.spec))
    assert box.pve.pve.storages["local"]["content"] == "iso,vztmpl,backup,import,snippets"
    logs = [f["message"] for kind, f in box.events if kind == "log" and f.get("step") == "hypervisors/storage-content"]
    assert logs == ["storage local: enabling content snippets (PUT /storage/local content=iso,vztmpl,backup,import,snippets)"]
    caps = box.state.get("hypervisors/capabilities").outputs
    assert caps["nodes"] == ["pve1", "pve2", "pve3"] and caps["checked"] == ["privileges", "storage", "bridge", "memory", "image factory"]
    box.forget()
    await box.run(hypervisors.steps(box.spec))
    assert box.pve.requests_matching("PUT", "/storage/local") == 1  # looked, found it there


async def test_a_host_installed_before_9_0_7_gets_import_too(make_sandbox):
    box = make_sandbox(onprem())
    box.pve.pve.storages["local"]["content"] = "iso,vztmpl,backup"  # pve-installer 9.0.0-9.0.6, or upgraded from 8.x
    await box.run(hypervisors.steps(box.spec))
    assert box.state.get("hypervisors/storage-content").outputs["added"] == ["import", "snippets"]


async def test_a_zfs_install_has_no_local_lvm(make_sandbox):
    box = make_sandbox(onprem(), layout="zfs")
    err = await failing(box)
    assert "storage 'local-lvm' (hypervisors.proxmox.storage) does not exist there (it has: local, local-zfs)" in err.message
    assert "fix: set hypervisors.proxmox.storage" in err.message and "pvesm status --content images" in err.message


async def test_a_missing_bridge_and_too_little_memory_are_reported_together(make_sandbox):
    data = onprem()
    data["hypervisors"]["proxmox"]["bridge"] = "vmbr7"
    box = make_sandbox(data)
    box.hosts.hosts["pve2"].memory_available = 2 * 1024**3
    err = await failing(box)
    assert "pve1: bridge 'vmbr7' (hypervisors.proxmox.bridge) does not exist (bridges: vmbr0)" in err.message
    assert "pvesh create /nodes/pve1/network --iface vmbr7 --type bridge" in err.message
    assert "pve2: 2.0 GiB free, the guests not created yet (lab-cp-2, lab-w-2) need 12.0 GiB" in err.message
    assert err.message.count("fix:") == 4  # three bridges, one node short of memory


async def test_a_vlan_needs_a_vlan_aware_bridge(make_sandbox):
    data = onprem()
    data["hypervisors"]["proxmox"]["vlan"] = 30
    err = await failing(make_sandbox(data))
    assert "bridge vmbr0 is not VLAN aware but hypervisors.proxmox.vlan is 30" in err.message and "bridge_vlan_aware 1" in err.message


async def test_the_image_factory_must_be_reachable_from_the_hosts(make_sandbox):
    box = make_sandbox(onprem())
    del box.conns.endpoints[("http", "image-factory")]  # the spec's own factory, which the offline hosts cannot reach
    err = await failing(box)
    assert "pve1: cannot reach the Image Factory at https://factory.talos.dev (curl: (6) Could not resolve host: factory.talos.dev)" in err.message
    assert "clusters[].image_factory" in err.message


async def test_a_token_of_your_own_without_the_role_is_refused_before_anything(make_sandbox):
    data = onprem()
    for node in data["hypervisors"]["proxmox"]["nodes"]:
        node.update(token_id="root@pam!mine", token_secret="env:MY_TOKEN")
    box = make_sandbox(data)
    import os

    os.environ["MY_TOKEN"] = "my-secret"
    try:
        box.pve.pve.add_token("root@pam!mine", "my-secret")  # made with pveum, privsep 1, no ACL entry
        err = await failing(box)
    finally:
        del os.environ["MY_TOKEN"]
    assert "API token root@pam!mine may not POST /nodes/{node}/qemu: lacks /vms/1000: VM.Allocate" in err.message
    assert "pveum acl modify / --tokens 'root@pam!mine' --roles TierZero" in err.message and 'pveum role add TierZero --privs "' in err.message
