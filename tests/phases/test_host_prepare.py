"""Host preparation: an A1 instance booted from a Debian arm64 image becomes a Proxmox VE host over
SSH as the image user (sudo), root may log in by key afterwards; a second run changes nothing; a run
killed during the package install or the reboot resumes without installing or rebooting twice."""

from __future__ import annotations

import pytest

from tierzero.engine.runner import StepFailed
from tierzero.phases import hypervisors
from tierzero.phases.host_prepare import MARKER, prepare_steps
from tierzero.render.remote_files import write_file_script

from .conftest import blueprint
from .test_hypervisors import oci_spec


def _prepare_only(box) -> list:
    return prepare_steps(box.spec)


async def test_a_bare_debian_instance_becomes_a_proxmox_host(make_sandbox):
    box = make_sandbox(oci_spec())
    host = box.hosts.hosts["pve1"]
    assert not host.pve and host.hostname == "a1-1" and not box.hosts.root_allowed(host)
    await box.run(_prepare_only(box))
    out = box.state.get("hypervisors/prepare/pve1").outputs
    assert out["changed"] == ["hostname", "cloud-init", "/etc/hosts", "key", "repository", "packages", "reboot", "root login"]
    assert host.pve and host.hostname == "pve1" and host.kernel.endswith("pxvirt") and box.hosts.root_allowed(host)
    assert host.files["/etc/hosts"].decode().splitlines()[1] == f"{host.address} pve1.internal pve1"
    assert "Suites: trixie" in host.files["/etc/apt/sources.list.d/pxvirt.sources"].decode()
    # Every root command went through sudo as the image user: none was sent as root before root could log in.
    assert all(cmd.startswith(("sudo ", "cat ", "dpkg ", "hostname", "test ")) for name, cmd in box.hosts.commands if name == "pve1")


async def test_then_the_hypervisors_phase_runs_as_root(make_sandbox):
    from .test_hypervisors import witness_by_address

    box = make_sandbox(witness_by_address(oci_spec()))
    await box.run(hypervisors.steps(box.spec))
    assert box.hosts.cluster.members == ["pve1", "pve2"] and box.hosts.cluster.qdevice
    first_root = min(i for i, (n, c) in enumerate(box.hosts.commands) if n == "pve1" and c == "pveversion")
    last_prepare = max(i for i, (n, c) in enumerate(box.hosts.commands) if n == "pve1" and c.startswith("sudo "))
    assert last_prepare < first_root


async def test_a_second_run_changes_nothing(make_sandbox):
    box = make_sandbox(oci_spec())
    await box.run(_prepare_only(box))
    boots = {n: h.boot_id for n, h in box.hosts.hosts.items()}
    box.forget()
    before = len(box.hosts.commands)
    await box.run(_prepare_only(box))
    assert box.state.get("hypervisors/prepare/pve1").outputs["changed"] == []
    assert {n: h.boot_id for n, h in box.hosts.hosts.items()} == boots  # no second reboot
    assert not [c for _, c in box.hosts.commands[before:] if "apt-get install" in c or "reboot" in c]


async def test_killed_during_the_package_install_it_finishes_the_install(make_sandbox):
    box = make_sandbox(oci_spec())
    host = box.hosts.hosts["pve1"]
    # What a kill -9 during `apt-get install` leaves: dpkg interrupted, the Proxmox packages not configured.
    host.dpkg_interrupted = True
    refused = await _ssh(box, "sudo apt-get install -y qemu-server")
    assert "dpkg was interrupted" in refused.stderr
    await box.run(_prepare_only(box))
    assert host.pve and not host.dpkg_interrupted
    configure = [i for i, (n, c) in enumerate(box.hosts.commands) if n == "pve1" and c == "sudo dpkg --configure -a"]
    install = [i for i, (n, c) in enumerate(box.hosts.commands) if n == "pve1" and "apt-get install -y proxmox-ve" in c]
    assert configure and install and configure[0] < install[0]


async def test_killed_during_the_reboot_it_does_not_reboot_again(make_sandbox):
    box = make_sandbox(oci_spec())
    await box.run(_prepare_only(box))
    host = box.hosts.hosts["pve1"]
    # A run killed after the install but before the reboot: the marker holds the current boot id.
    await _ssh(box, f"sudo tee {MARKER} >/dev/null", input=host.boot_id + "\n")
    box.forget()
    await box.run(_prepare_only(box))
    assert "reboot" in box.state.get("hypervisors/prepare/pve1").outputs["changed"]
    # A run killed during the reboot: the host came back under a new boot id; the marker still holds the old one.
    box.forget()
    boot = host.boot_id
    await box.run(_prepare_only(box))
    assert host.boot_id == boot and "reboot" not in box.state.get("hypervisors/prepare/pve1").outputs["changed"]


async def test_a_host_given_by_address_is_not_prepared(make_sandbox):
    data = blueprint("proxmox.yaml")
    box = make_sandbox(data)
    assert prepare_steps(box.spec) == []


async def test_the_wrong_debian_release_is_refused_before_anything_changes(make_sandbox):
    data = oci_spec()
    data["hypervisors"]["proxmox"]["install"] = {"version": 8}  # bookworm: the instance runs trixie
    box = make_sandbox(data)
    with pytest.raises(StepFailed) as err:
        await box.run(_prepare_only(box))
    assert "runs Debian trixie on arm64; pxvirt 8 installs on Debian bookworm arm64" in err.value.message
    assert not [c for n, c in box.hosts.commands if c.startswith("sudo ")]


async def _ssh(box, command: str, input: str | None = None):
    from tierzero.adapters.ssh import close_all, ssh_client

    try:
        return await ssh_client(box.conns, "pve1", login="debian", workspace_root=box.ws.root).run(command, check=False, input=input)
    finally:
        await close_all(box.conns)


async def test_the_vm_network_spans_the_hosts_and_a_rerun_changes_nothing(make_sandbox):
    from tierzero.phases.vm_network import GATEWAY_FILE

    from .test_hypervisors import witness_by_address

    box = make_sandbox(witness_by_address(oci_spec()))
    await box.run(hypervisors.steps(box.spec))
    sdn = box.pve.pve.sdn["running"]
    pve1, pve2 = box.hosts.hosts["pve1"], box.hosts.hosts["pve2"]
    assert sdn["zones"]["tierzero"]["peers"] == f"{pve1.address},{pve2.address}" and int(sdn["zones"]["tierzero"]["mtu"]) == 1450
    assert sdn["vnets"]["vmbr1"]["zone"] == "tierzero"
    assert "vmbr1" not in pve1.bridges  # no pre-seeded bridge: the vnet is what the VMs use
    stanza = pve1.files[GATEWAY_FILE].decode()
    assert "iface vmbr1 inet static\n\taddress 10.10.0.1/24\n" in stanza and "-s '10.10.0.0/24' -o enp0s6 -j MASQUERADE" in stanza
    assert GATEWAY_FILE not in pve2.files
    assert ("pve1", write_file_script(GATEWAY_FILE, "0644")) in box.hosts.commands  # ifreload never reads a half file
    box.forget()
    await box.run(hypervisors.steps(box.spec))
    assert box.state.get("hypervisors/vm-network").outputs["changed"] == []
    assert box.state.get("hypervisors/vm-gateway").outputs["changed"] is False
