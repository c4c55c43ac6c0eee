"""Host preparation (steps `hypervisors/prepare/<node>`, before that node's preflight): a cloud
instance booted from a Debian arm64 image becomes a Proxmox VE host, over SSH as the image's
default user with sudo, then lets root log in by key (`pvecm` joins and the QDevice need it).

Proxmox VE has no official arm64 build: this installs the community port the spec names
(`hypervisors.proxmox.install`, PXVIRT by default), as its documentation installs it on Debian
(jiangcuo/Pxvirt-docs en/installfromdebian.md): the node's address and hostname in /etc/hosts, the
repository and its key, the packages, and a reboot into its kernel.

Every action looks first and is safe to repeat: a run killed anywhere resumes. `dpkg --configure -a`
finishes an install a kill interrupted; the reboot is decided by a marker holding the boot id the
packages were installed under, so a run killed during the reboot does not reboot again. cloud-init
would rename the host and rewrite /etc/hosts at every boot (cc_set_hostname, cc_update_etc_hosts,
and the Debian images' `manage_etc_hosts: true`): a drop-in turns both off first."""

from __future__ import annotations

import functools
import shlex
from pathlib import Path
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

from tierzero.adapters.retry import RetryExhausted, Transient, retry_async
from tierzero.adapters.ssh import BoundSsh, forget, retry_policy, ssh_client
from tierzero.engine.step import Step, StepContext
from tierzero.errors import OperationError
from tierzero.phases.hosts import host_address, pve_node
from tierzero.render.remote_files import write_file_script

if TYPE_CHECKING:
    from tierzero.spec.models import Platform, ProxmoxPort

KEYRING = "/etc/apt/keyrings/pxvirt.gpg"
SOURCES = "/etc/apt/sources.list.d/pxvirt.sources"
CLOUD_INIT_DROP_IN = "/etc/cloud/cloud.cfg.d/99-tierzero.cfg"
MARKER = "/var/lib/tierzero/installed-under-boot"
BOOT_ID = "/proc/sys/kernel/random/boot_id"
# cloud-init's `disable_root` line in root's authorized_keys (cloudinit/ssh_util.py DISABLE_USER_OPTS).
CLOUD_INIT_ROOT_LINE = "Please login as the user"
DOMAIN = "internal"  # ICANN reserved .internal for private use (2024): never a public name
INSTALL_TIMEOUT = 3600.0  # seconds: a slow mirror on one OCPU


@dataclass(frozen=True)
class PrepareInputs:
    node: str
    instance: str
    port: ProxmoxPort
    key_file: str  # the public key root will accept (the one cloud-init put behind its forced command)


def etc_hosts(name: str, address: str) -> str:
    """/etc/hosts as the Proxmox VE installer writes it (pve-installer 9.1.0 Install.pm 1071-1087)."""
    return (f"127.0.0.1 localhost.localdomain localhost\n{address} {name}.{DOMAIN} {name}\n\n"
            "# The following lines are desirable for IPv6 capable hosts\n\n"
            "::1     ip6-localhost ip6-loopback\nfe00::0 ip6-localnet\nff00::0 ip6-mcastprefix\n"
            "ff02::1 ip6-allnodes\nff02::2 ip6-allrouters\nff02::3 ip6-allhosts\n")


def sources(port: ProxmoxPort) -> str:
    """The port's repository as a deb822 source (sources.list.d(5)), signed by its own key only."""
    return f"Types: deb\nURIs: {port.repository}\nSuites: {port.suite}\nComponents: main\nSigned-By: {KEYRING}\n"


def _image_ssh(ctx: StepContext, name: str, user: str) -> BoundSsh:
    node = pve_node(ctx, name)
    key = None if ctx.connections.ssh_key is not None else ctx.workspace.root.parent / node.ssh.private_key
    return ssh_client(ctx.connections, name, login=user, workspace_root=ctx.workspace.root, key_path=key, on_retry=ctx.retry)


async def _write(ssh: BoundSsh, path: str, content: str, mode: str = "0644") -> bool:
    """Write a root-owned file through sudo when its content differs; True when it changed."""
    current = await ssh.run(["sudo", "cat", path], check=False)
    if current.ok and current.stdout == content:
        return False
    await ssh.run(["sudo", "install", "-d", "-m", "0755", path.rsplit("/", 1)[0]])
    await ssh.run(write_file_script(path, mode, sudo=True), input=content)
    return True


async def _check_image(ssh: BoundSsh, name: str, port: ProxmoxPort) -> None:
    release = (await ssh.run(["cat", "/etc/os-release"])).stdout
    fields = dict(line.split("=", 1) for line in release.splitlines() if "=" in line)
    distro, codename = fields.get("ID", "?").strip('"'), fields.get("VERSION_CODENAME", "?").strip('"')
    arch = (await ssh.run(["dpkg", "--print-architecture"])).stdout.strip()
    if distro != "debian" or codename != port.suite or arch != "arm64":
        raise OperationError(
            f"{name} runs {'Debian' if distro == 'debian' else distro} {codename} on {arch}; "
            f"{port.port} {port.version} installs on Debian {port.suite} arm64",
            hint=f"boot the instance from a Debian {port.suite} arm64 image, or set hypervisors.proxmox.install.version to match it")


async def _install(ctx: StepContext, ssh: BoundSsh, name: str, port: ProxmoxPort) -> bool:
    """The packages; True when something was installed."""
    await ssh.run(["sudo", "dpkg", "--configure", "-a"], timeout=INSTALL_TIMEOUT)  # an install a kill interrupted
    missing = [p for p in port.packages if not (await ssh.run(["dpkg", "-s", p], check=False)).ok]
    if not missing:
        return False
    boot = (await ssh.run(["cat", BOOT_ID])).stdout.strip()
    ctx.wait(f"apt-get install of {', '.join(missing)} on {name}")
    await ssh.run(["sudo", "apt-get", "update"], hint=f"check {port.repository} is reachable and {KEYRING} is its key")
    await ssh.run(["sudo", "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", *port.packages], timeout=INSTALL_TIMEOUT,
                  hint="if dpkg was interrupted, the next run finishes it with `dpkg --configure -a`")
    await _write(ssh, MARKER, boot + "\n")
    return True


async def _reboot_if_needed(ctx: StepContext, ssh: BoundSsh, name: str, user: str) -> bool:
    marker = await ssh.run(["sudo", "cat", MARKER], check=False)
    boot = (await ssh.run(["cat", BOOT_ID])).stdout.strip()
    if not marker.ok or marker.stdout.strip() != boot:
        return False  # never installed here, or already rebooted since
    ctx.wait(f"reboot of {name} into the {ctx.spec.proxmox.install.port} kernel")
    try:
        await ssh.run(["sudo", "systemctl", "reboot"], check=False)
    except OperationError:
        pass  # the connection may drop before the answer: the boot id tells
    await forget(ctx.connections, name, user)

    async def booted() -> str:
        now = (await _image_ssh(ctx, name, user).run(["cat", BOOT_ID])).stdout.strip()
        if now == boot:
            raise Transient(f"{name} has not rebooted yet")
        return now

    try:
        await retry_async(booted, policy=retry_policy(ctx.connections, "wait"), on_retry=ctx.retry, what=f"the reboot of {name}")
    except RetryExhausted as exc:
        raise OperationError(f"{name} did not come back from its reboot: {exc.message}",
                             hint="check the instance's console in the OCI console, then run again") from exc
    return True


async def _allow_root(ssh: BoundSsh, key: str) -> bool:
    """Root logs in with the workspace key (cloud-init's forced-command line removed first: sshd
    applies the first line that matches the key)."""
    current = await ssh.run(["sudo", "cat", "/root/.ssh/authorized_keys"], check=False)
    lines = current.stdout.splitlines() if current.ok else []
    if key in lines and not any(CLOUD_INIT_ROOT_LINE in line for line in lines):
        return False
    await ssh.run(["sudo", "install", "-d", "-m", "0700", "/root/.ssh"])
    if any(CLOUD_INIT_ROOT_LINE in line for line in lines):
        await ssh.run(["sudo", "sed", "-i", f"/{CLOUD_INIT_ROOT_LINE}/d", "/root/.ssh/authorized_keys"])
    if key not in lines:
        q = shlex.quote(key)
        await ssh.run(f"sudo grep -qxF {q} /root/.ssh/authorized_keys || echo {q} | sudo tee -a /root/.ssh/authorized_keys")
    return True


def _prepare(name: str):
    async def run(ctx: StepContext, inputs: PrepareInputs) -> Mapping[str, Any]:
        port = inputs.port
        key = _public_key(inputs.key_file, name)  # before anything changes
        ssh = _image_ssh(ctx, name, port.image_user)
        await _check_image(ssh, name, port)
        changed: list[str] = []
        if (await ssh.run(["hostname"])).stdout.strip() != name:
            await ssh.run(["sudo", "hostnamectl", "set-hostname", name])
            changed.append("hostname")
        if await _write(ssh, CLOUD_INIT_DROP_IN, "# tierzero: the Proxmox node name and /etc/hosts are not cloud-init's\n"
                        "preserve_hostname: true\nmanage_etc_hosts: false\n"):
            changed.append("cloud-init")
        if await _write(ssh, "/etc/hosts", etc_hosts(name, host_address(ctx, name))):
            changed.append("/etc/hosts")
        if not (await ssh.run(["sudo", "test", "-s", KEYRING], check=False)).ok:
            await ssh.run(["sudo", "install", "-d", "-m", "0755", "/etc/apt/keyrings"])
            await ssh.run(["sudo", "curl", "-fsSL", "-o", KEYRING, port.key_url], hint=f"check {port.key_url} is reachable from the host")
            changed.append("key")
        if await _write(ssh, SOURCES, sources(port)):
            changed.append("repository")
        if await _install(ctx, ssh, name, port):
            changed.append("packages")
        if await _reboot_if_needed(ctx, ssh, name, port.image_user):
            changed.append("reboot")
        if await _allow_root(ssh, key):
            changed.append("root login")
        return {"node": name, "port": f"{port.port} {port.version}", "suite": port.suite, "changed": changed}

    return run


def _inputs(name: str, ctx: StepContext) -> PrepareInputs:
    node = pve_node(ctx, name)
    oci = ctx.spec.oci
    key_file = ctx.workspace.root.parent / (oci.ssh_public_key if oci is not None else node.ssh.private_key + ".pub")
    return PrepareInputs(name, node.instance or "", ctx.spec.proxmox.install, str(key_file))


def _public_key(path: str, name: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError as exc:
        raise OperationError(f"the public key {path} (cloud.oci.ssh_public_key) cannot be read ({exc.strerror}): root's login on {name} needs it",
                             hint="run `tierzero init` to create the workspace key, or point cloud.oci.ssh_public_key at yours") from exc


def prepare_steps(spec: Platform) -> list[Step[Any]]:
    """One step per Proxmox node on a cloud instance; none for hosts given by address."""
    port = spec.proxmox.install
    return [Step(f"hypervisors/prepare/{n.name}", "hypervisors",
                 f"make {n.name} ({n.instance}) a Proxmox VE host: {port.port} {port.version}, a community arm64 port",
                 _prepare(n.name), inputs=functools.partial(_inputs, n.name), real_only=True)
            for n in spec.proxmox.nodes if n.instance]
