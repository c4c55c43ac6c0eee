"""The sandbox's OCI instances boot as a Debian arm64 cloud image does (tierzero.sandbox.pve_hosts.
cloud_image): the image user with sudo, root refused with cloud-init's words, the hostname label, no
/dev/kvm, no Proxmox VE until it is installed; and the Proxmox they later run refuses a `kvm: 1` VM."""

from __future__ import annotations

from collections.abc import Iterator
import pytest

from spec_builder import build_spec
from tierzero.adapters.connections import Connections
from tierzero.adapters.ssh import close_all, ssh_client
from tierzero.sandbox.guests import KVM_MISSING, link
from tierzero.sandbox.fakepve import start_for_spec
from tierzero.sandbox.pve_hosts import PveHosts, cloud_boots, hosts_for_spec, port_repositories, public_addresses, start_pve_hosts
from tierzero.sandbox.pve_hosts.cloud_image import refusal
from tierzero.workspace.layout import Workspace

SPEC = build_spec("oci-free-tier")


@pytest.fixture
def hosts(ws: Workspace) -> Iterator[PveHosts]:
    nodes, witnesses = hosts_for_spec(SPEC)
    started = start_pve_hosts(nodes, ws.ssh_public_key, witnesses=witnesses, public=public_addresses(SPEC), kvm=True,
                              cloud=cloud_boots(SPEC), repositories=port_repositories(SPEC))
    started.reboot_seconds = 0.05
    yield started
    started.stop()


def _conns(hosts: PveHosts, ws: Workspace) -> Connections:
    return hosts.connections(Connections(target="sandbox", ssh_key=ws.ssh_key, known_hosts=ws.root / "known_hosts"))


async def test_root_login_is_refused_with_cloud_inits_message(hosts: PveHosts, ws: Workspace) -> None:
    conns = _conns(hosts, ws)
    try:
        res = await ssh_client(conns, "pve1", login="root", workspace_root=ws.root).run("pveversion", check=False)
        assert res.exit_status == 142 and res.stdout == 'Please login as the user "debian" rather than the user "root".\n\n'
        assert res.stdout == refusal("debian")
        # The witness is Ubuntu's platform image: its own default user.
        witness = hosts.hosts["bastion"]
        assert witness.image_user == "ubuntu" and not hosts.root_allowed(witness)
    finally:
        await close_all(conns)


async def test_the_image_user_boots_a_bare_debian_instance(hosts: PveHosts, ws: Workspace) -> None:
    conns = _conns(hosts, ws)
    ssh = ssh_client(conns, "pve1", login="debian", workspace_root=ws.root)
    try:
        assert (await ssh.run("hostname")).stdout.strip() == "a1-1"  # the VNIC's hostname_label, not the spec's node name
        assert "VERSION_CODENAME=trixie" in (await ssh.run("cat /etc/os-release")).stdout
        assert (await ssh.run("dpkg --print-architecture")).stdout.strip() == "arm64"
        assert not (await ssh.run("test -e /dev/kvm", check=False)).ok  # A1 guests have no KVM
        missing = await ssh.run("pveversion", check=False)
        assert missing.exit_status == 127 and "not found" in missing.stderr
        # Root work needs sudo, which is passwordless for the image user.
        assert (await ssh.run("hostnamectl set-hostname pve1", check=False)).exit_status != 0
        assert (await ssh.run("sudo hostnamectl set-hostname pve1")).ok
        # cloud-init's /etc/hosts maps the name to loopback: Proxmox would refuse it.
        assert (await ssh.run("getent hosts a1-1")).stdout.split()[0] == "127.0.1.1"
        # The VCN resolver knows the other instance by its label.
        assert (await ssh.run("getent hosts a1-2")).stdout.split()[0] == hosts.hosts["pve2"].address
    finally:
        await close_all(conns)


async def test_a_user_the_image_lacks_cannot_log_in(hosts: PveHosts, ws: Workspace) -> None:
    from tierzero.errors import TierzeroError

    conns = _conns(hosts, ws)
    try:
        with pytest.raises(TierzeroError, match="Permission denied|refused"):
            await ssh_client(conns, "pve1", login="opc", workspace_root=ws.root).run("true")
    finally:
        await close_all(conns)


async def test_apt_refuses_until_the_repository_key_and_hosts_are_right(hosts: PveHosts, ws: Workspace) -> None:
    port = SPEC.proxmox.install
    conns = _conns(hosts, ws)
    ssh = ssh_client(conns, "pve1", login="debian", workspace_root=ws.root)
    try:
        first = await ssh.run("sudo apt-get install -y proxmox-ve", check=False)
        assert first.exit_status == 100 and "Unable to locate package proxmox-ve" in first.stderr
        await ssh.run("sudo tee /etc/apt/sources.list.d/pxvirt.sources >/dev/null",
                      input=f"Types: deb\nURIs: {port.repository}\nSuites: trixie\nComponents: main\nSigned-By: /etc/apt/keyrings/pxvirt.gpg\n")
        unsigned = await ssh.run("sudo apt-get update", check=False)
        assert unsigned.exit_status == 100 and "NO_PUBKEY" in unsigned.stderr and "is not signed" in unsigned.stderr
        await ssh.run(f"sudo curl -fsSL -o /etc/apt/keyrings/pxvirt.gpg {port.key_url}")
        assert (await ssh.run("sudo apt-get update")).ok
        # The hostname still resolves to 127.0.1.1: pve-cluster's configure step fails and dpkg is left interrupted.
        broken = await ssh.run("sudo apt-get install -y proxmox-ve", check=False)
        assert broken.exit_status == 100 and "Unable to resolve node name 'a1-1'" in broken.stderr
        again = await ssh.run("sudo apt-get install -y proxmox-ve", check=False)
        assert "dpkg was interrupted" in again.stderr
        host = hosts.hosts["pve1"]
        await ssh.run("sudo tee /etc/hosts >/dev/null", input=f"127.0.0.1 localhost\n{host.address} a1-1.internal a1-1\n")
        assert (await ssh.run("sudo dpkg --configure -a")).ok
        assert (await ssh.run("sudo apt-get install -y proxmox-ve")).ok
        assert "pve-manager/" in (await ssh.run("pveversion")).stdout
    finally:
        await close_all(conns)


async def test_cloud_init_renames_the_host_at_boot_unless_told_not_to(hosts: PveHosts, ws: Workspace) -> None:
    conns = _conns(hosts, ws)
    host = hosts.hosts["pve1"]
    try:
        ssh = ssh_client(conns, "pve1", login="debian", workspace_root=ws.root)
        await ssh.run("sudo hostnamectl set-hostname pve1")
        boot = host.boot_id
        await ssh.run("sudo systemctl reboot")
        await _rebooted(conns, ws, boot)
        assert (await ssh.run("hostname")).stdout.strip() == "a1-1"  # cc_set_hostname ran again
        await ssh.run("sudo tee /etc/cloud/cloud.cfg.d/99-x.cfg >/dev/null", input="preserve_hostname: true\nmanage_etc_hosts: false\n")
        await ssh.run("sudo hostnamectl set-hostname pve1")
        boot = host.boot_id
        await ssh.run("sudo systemctl reboot")
        await _rebooted(conns, ws, boot)
        assert (await ssh.run("hostname")).stdout.strip() == "pve1"
    finally:
        await close_all(conns)


async def _rebooted(conns: Connections, ws: Workspace, boot: str, deadline: float = 20.0) -> None:
    """Poll the boot id over SSH (through refused connections while the host is down) until it changes."""
    import asyncio
    import time

    from tierzero.adapters.ssh import forget

    end = time.monotonic() + deadline
    while time.monotonic() < end:
        await forget(conns, "pve1", "debian")
        try:
            now = (await ssh_client(conns, "pve1", login="debian", workspace_root=ws.root).run("cat /proc/sys/kernel/random/boot_id")).stdout.strip()
        except Exception:  # noqa: BLE001 - down while it reboots
            now = boot
        if now != boot:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the host did not reboot")


async def test_proxmox_refuses_a_kvm_vm_on_an_a1_host(hosts: PveHosts, ws: Workspace) -> None:
    """qemu-server 9.1.0 QemuServer.pm config_to_command 3189-3191, on the host as OCI gives it:
    the start task fails, `kvm: 0` (TCG) starts."""
    from proxmoxer import ProxmoxAPI

    from tierzero.adapters.proxmox import ProxmoxClient
    from tierzero.adapters.retry import Policy

    from .pve_stock import run_task

    server = start_for_spec(SPEC)
    try:
        link(server, hosts)
        assert not hosts.hosts["pve1"].kvm
        api = ProxmoxAPI("127.0.0.1", port=server.pve.port, user="root@pam", password="sandbox-only", verify_ssl=server.cafile, service="PVE")
        root = ProxmoxClient(api, label="root@pam", policy=Policy(base=0.01, cap=0.05, deadline=1.0), poll_interval=0.01)
        await run_task(root, "post", "nodes/pve1/qemu", vmid=301, name="cp-x", memory=512, net0="virtio,bridge=vmbr0")
        assert await run_task(root, "post", "nodes/pve1/qemu/301/status/start") == KVM_MISSING
        await root.set_vm_config("pve1", 301, kvm=0)
        assert await run_task(root, "post", "nodes/pve1/qemu/301/status/start") == "OK"
    finally:
        server.stop()


def test_the_pxvirt_port_is_named_in_the_starter() -> None:
    port = SPEC.proxmox.install
    assert (port.port, port.version, port.suite, port.image_user) == ("pxvirt", 9, "trixie", "debian")
