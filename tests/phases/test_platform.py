from __future__ import annotations

import stat

import pytest

from tierzero.adapters.retry import Policy
from tierzero.engine.runner import Selection, StepFailed
from tierzero.phases import hypervisors, platform
from tierzero.render.remote_files import write_file_script

from .conftest import blueprint
from .fakes import TalosWorld


def oci_spec() -> dict:
    data = blueprint("oci-free-tier.yaml")
    data["hypervisors"]["proxmox"]["qdevice"] = {"host": "10.99.0.250"}  # no cloud phase here to publish `bastion`
    data["clusters"][0]["workers"] = [{"name": "w-1", "node": "pve2", "cores": 1, "memory_gb": 1, "disk_gb": 20, "ip": "10.10.0.21/24", "mac": "BC:24:11:00:00:21"}]
    return data


def prepare(box) -> TalosWorld:
    world = TalosWorld(box.pve.pve, box.spec)
    box.platform_hooks = world.hooks()
    return world


def all_steps(box) -> list:
    return hypervisors.steps(box.spec) + platform.steps(box.spec, box.platform_hooks)


async def test_whole_path_two_hosts_qdevice(make_sandbox):
    box = make_sandbox(oci_spec(), kvm=False)
    world = prepare(box)
    await box.run(all_steps(box))
    pve = box.pve.pve
    vms = {vm.name: vm for vm in pve.vms}
    assert sorted(vms) == ["cp-1", "cp-2", "cp-3", "w-1"]
    assert {vm.node for vm in vms.values()} == {"pve1", "pve2"} and all(vm.status == "running" for vm in vms.values())
    cp1 = vms["cp-1"].config
    assert cp1["kvm"] == 0 and cp1["cores"] == 1 and str(cp1["memory"]) == "2048"
    assert cp1["net0"].startswith("virtio=BC:24:11:00:00:11,bridge=vmbr1")
    # import-from is consumed by the create: the disk is a new volume holding the downloaded image.
    assert cp1["scsi0"].startswith("local-lvm:vm-1000-disk-") and "import-from" not in cp1["scsi0"]
    disk = pve.storages["local-lvm"]["volumes"][cp1["scsi0"].split(",")[0].split(":")[1]]
    assert disk["image"]["version"] == "v1.13.9" and disk["image"]["platform"] == "nocloud" and disk["image"]["arch"] == "arm64"
    assert cp1["cicustom"].startswith("user=local:snippets/") and cp1["ide2"].startswith("local-lvm:vm-1000-cloudinit,")
    assert box.pve.creates() == 4 and world.bootstraps == ["main"]
    health = box.state.get("platform/main/health").outputs
    assert health["etcd_members"] == ["cp-1", "cp-2", "cp-3"] and len(health["nodes_ready"]) == 4
    for name in ("kubeconfig", "talosconfig"):
        path = box.ws.root / "clusters" / "main" / name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    snippet = box.hosts.hosts["pve1"].files["/var/lib/vz/snippets/tierzero-cp-1-user.yaml"]
    assert b"name: cp-1" in snippet
    # The machine config (secrets) is staged private and renamed into place: never half-written or world-readable.
    assert ("pve1", write_file_script("/var/lib/vz/snippets/tierzero-cp-1-user.yaml", "0600")) in box.hosts.commands
    downloads = box.pve.requests_matching("POST", "download-url")
    assert downloads == 2  # one per host holding VMs of the cluster: `local` is each node's own

    # Idempotent: forget the engine state, run everything again, nothing is created.
    box.forget()
    commands = len(box.hosts.commands)
    await box.run(all_steps(box))
    assert box.pve.creates() == 4 and box.pve.requests_matching("POST", "download-url") == downloads
    assert world.bootstraps == ["main"] and len(pve.vms) == 4
    assert not [c for _, c in box.hosts.commands[commands:]
                if c.startswith(("pvecm create", "pvecm add", "pvecm qdevice")) or "cat >" in c or "/var/lib/vz/snippets" in c and "mkdir" in c]


async def test_onprem_three_hosts_ceph_and_workers(make_sandbox):
    box = make_sandbox(blueprint("proxmox.yaml"))
    world = prepare(box)
    await box.run(all_steps(box))
    assert sorted(vm.name for vm in box.pve.pve.vms) == ["lab-cp-1", "lab-cp-2", "lab-cp-3", "lab-w-1", "lab-w-2", "lab-w-3"]
    assert box.state.get("hypervisors/summary").outputs["ceph_health"] == "HEALTH_OK"
    assert all(vm.config["kvm"] == 1 and vm.config["cpu"] == "host" for vm in box.pve.pve.vms)
    assert box.state.get("platform/lab/health").outputs["etcd_members"] == ["lab-cp-1", "lab-cp-2", "lab-cp-3"]
    assert world.bootstraps == ["lab"]


async def run_hypervisors(box) -> None:
    await box.run(hypervisors.steps(box.spec))


async def test_vm_locked_is_waited_out(make_sandbox):
    box = make_sandbox(oci_spec(), kvm=False)
    prepare(box)
    await run_hypervisors(box)
    box.pve.pve.fail("POST", "/nodes/pve1/qemu/1000/status/start", error="locked", times=2)
    await box.run(all_steps(box), only="platform")
    assert any(kind == "retry" and f["step"] == "platform/main/vm/cp-1" for kind, f in box.events)
    assert box.pve.pve.vm(1000).status == "running"


async def test_vm_locked_for_good_stops_clearly(make_sandbox):
    box = make_sandbox(oci_spec(), kvm=False)
    prepare(box)
    await run_hypervisors(box)
    box.pve.pve.fail("POST", "/nodes/pve1/qemu/1000/status/start", error="locked")
    with pytest.raises(StepFailed) as err:
        await box.run(all_steps(box), only="platform")
    assert err.value.step_id == "platform/main/vm/cp-1"
    assert "locked" in err.value.message and "qm unlock" in (err.value.hint or "")


async def test_task_error_stops_with_log_tail(make_sandbox):
    box = make_sandbox(oci_spec(), kvm=False)
    prepare(box)
    await run_hypervisors(box)
    box.pve.pve.fail("POST", "/nodes/pve2/qemu/1002/status/start", error="qemu_exited_code")
    with pytest.raises(StepFailed) as err:
        await box.run(all_steps(box), only="platform")
    assert err.value.step_id == "platform/main/vm/cp-3"
    assert "TASK" not in err.value.message or "QEMU exited with code 1" in err.value.message
    assert "QEMU exited with code 1" in err.value.message


async def test_node_offline_is_retried_then_reported(make_sandbox):
    box = make_sandbox(oci_spec(), kvm=False)
    prepare(box)
    await run_hypervisors(box)
    box.pve.pve.set_node_offline("pve2")
    with pytest.raises(StepFailed) as err:
        await box.run(all_steps(box), only="platform")
    assert "pve2" in err.value.step_id and "offline" in (err.value.hint or "")


async def test_vmid_taken_by_another_guest(make_sandbox):
    box = make_sandbox(oci_spec(), kvm=False)
    prepare(box)
    await run_hypervisors(box)
    box.pve.pve.add_vm(1001, "someone-else", node="pve1")
    with pytest.raises(StepFailed) as err:
        await box.run(all_steps(box), only="platform")
    assert "VMID 1001 is taken" in err.value.message


@pytest.mark.parametrize("answers_version", [False, True], ids=["talos-1.12-refuses-version", "talos-1.13-answers-version"])
async def test_maintenance_nodes_get_config_over_talos_api(make_sandbox, answers_version):
    """Talos <= 1.12 refuses Version in maintenance mode (UNIMPLEMENTED), 1.13+ answers it: the
    config is applied either way."""
    box = make_sandbox(oci_spec(), kvm=False)
    world = prepare(box)
    world.cloud_init = False
    world.maintenance_version = answers_version
    await box.run(all_steps(box))
    assert sorted(world.applied) == ["cp-1", "cp-2", "cp-3", "w-1"]
    assert b"name: cp-2" in world.applied["cp-2"]
    assert box.state.get("platform/main/talos").outputs["applied"] == ["cp-1", "cp-2", "cp-3", "w-1"]


async def test_a_config_refused_in_maintenance_mode_fails_the_step_at_once(make_sandbox):
    box = make_sandbox(oci_spec(), kvm=False)
    world = prepare(box)
    world.cloud_init = False
    world.refuse_apply = "configuration validation failed: 1 error occurred"
    with pytest.raises(StepFailed) as err:
        await box.run(all_steps(box))
    assert "refused its machine config in maintenance mode" in err.value.message
    assert "configuration validation failed" in err.value.message
    assert "not healthy" not in err.value.message  # not a wait that ran out


async def test_destroy_removes_only_our_vms(make_sandbox):
    box = make_sandbox(oci_spec(), kvm=False)
    prepare(box)
    await box.run(all_steps(box))
    box.pve.pve.add_vm(5000, "not-ours", node="pve1")
    ctx_steps = [s for s in platform.steps(box.spec) if s.destroy is not None]
    runner = box.runner(all_steps(box))
    for step in reversed(ctx_steps):
        out = await step.destroy(runner._context(step.id))
        assert out["deleted"] is True
    assert [vm.name for vm in box.pve.pve.vms] == ["not-ours"]


def _rerun(box) -> dict[str, str]:
    """What a deploy of the platform phase would do now: {step id: reason} of the steps it runs."""
    return {i.step_id: i.reason for i in box.runner(all_steps(box)).plan(Selection(only="platform")) if i.action == "run"}


@pytest.mark.parametrize("field, value", [("image_storage", "images"), ("allow_software_emulation", False)])
async def test_every_setting_a_vm_is_made_from_re_runs_its_step(make_sandbox, field, value):
    box = make_sandbox(oci_spec(), kvm=True)
    prepare(box)
    await box.run(all_steps(box))
    vms = {f"platform/main/vm/{n}" for n in ("cp-1", "cp-2", "cp-3", "w-1")}
    assert not vms & set(_rerun(box))  # nothing changed: the VMs are skipped
    assert getattr(box.spec.proxmox, field) != value
    setattr(box.spec.proxmox, field, value)
    rerun = _rerun(box)
    assert vms <= set(rerun) and {rerun[v] for v in vms} == {"inputs changed"}


async def test_a_refused_talosconfig_stops_the_talos_step_at_once(make_sandbox):
    box = make_sandbox(oci_spec(), kvm=False)
    world = prepare(box)
    box.conns.retry.wait = Policy(base=0.01, cap=0.05, deadline=600.0)  # a real deadline: only the refusal may stop it
    world.untrusted = True
    with pytest.raises(StepFailed) as err:
        await box.run(all_steps(box))
    assert err.value.step_id == "platform/main/talos" and "UNAUTHENTICATED" in err.value.message
    assert sorted(world.probes) == ["cp-1", "cp-2", "cp-3", "w-1"]  # one probe each, no retries
