"""A stand-in host that is an OCI instance booted from a Debian arm64 cloud image, as it boots and
as its package manager behaves, until tierzero has made it a Proxmox VE host. Mixed into
`tierzero.sandbox.pve_hosts.PveHosts`; the rules apply to hosts with `HostState.image_user`.

Each rule and its source:
- Login as the image's default user `debian`, passwordless sudo; root's authorized_keys holds the
  instance key behind cloud-init's forced command, so a root login prints `Please login as the user
  "debian" rather than the user "root".`, an empty line, and exits 142. sshd applies the first line
  that matches the key. Sources: Debian 12 cloud-init 22.4.2 /etc/cloud/cloud.cfg (default_user
  debian, sudo ALL=(ALL) NOPASSWD:ALL, disable_root: true); cloud-init cloudinit/ssh_util.py
  DISABLE_USER_OPTS, _DISABLE_USER_SSH_EXIT = 142; openssh auth2-pubkeyfile.c (first match).
  The real session sleeps 10 s before it exits; the stand-in does not wait.
- The hostname is the VNIC's hostname_label (IMDS `hostname` -> cloud-init local-hostname) and
  cloud-init sets it again at every boot unless `preserve_hostname: true`; the Debian images set
  `manage_etc_hosts: true`, so /etc/hosts is rendered again at every boot (`127.0.1.1 <fqdn>
  <hostname>`) unless a later config sets it false. Sources: cloud-init DataSourceOracle.py,
  cc_set_hostname / cc_update_hostname (preserve_hostname), cc_update_etc_hosts;
  debian-cloud-images config_space/files/etc/cloud/cloud.cfg.d/01_debian_cloud.cfg/GENERICCLOUD.
- The VCN resolver answers the instances' hostname labels with their private addresses (OCI docs,
  "DNS in Your Virtual Cloud Network"); other names only through /etc/hosts.
- No /dev/kvm on A1 (dockur/windows-arm issues 27, 58, 109; research oci.md §4); no Proxmox VE
  commands until the port's packages are installed.
- APT: a package only a repository outside Debian has is `Unable to locate package` until that
  repository is in sources.list.d and `apt-get update` fetched it; a repository whose Signed-By
  keyring is not its key fails the update (`NO_PUBKEY`, `is not signed`); after an interrupted
  dpkg every install refuses until `dpkg --configure -a`. Sources: apt 3.0 (trixie) messages;
  apt-secure(8).
- Installing Proxmox VE while the hostname resolves to a loopback address fails in pve-cluster's
  configure step (PXVIRT docs en/installfromdebian.md: put the node's IP and hostname in /etc/hosts
  first; pve-cluster refuses a hostname resolving to 127.x, Proxmox wiki "Install Proxmox VE on
  Debian 13 Trixie"). The new kernel runs after a reboot.
- Root commands from the image user without `sudo` fail with permission errors.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any, Callable

from tierzero.sandbox.pve_hosts.commands import HostState

PVE_COMMANDS = frozenset({"pveversion", "pvecm", "pveum", "pveceph", "pvesh", "qm", "pct", "pvesm", "pveam"})
ROOT_COMMANDS = frozenset({"apt-get", "hostnamectl", "systemctl", "reboot", "pvecm", "pveum", "pveceph", "pvesh", "qm", "pct",
                           "ssh-keygen", "ceph", "ceph-volume", "lvcreate", "tailscale", "iptables", "ifreload"})
ROOT_PATHS = ("/etc/", "/root/", "/var/lib/", "/usr/share/keyrings/")
PROXMOX_PACKAGES = frozenset({"proxmox-ve", "pve-manager", "qemu-server", "pve-cluster", "pxvirt", "proxmox-default-kernel"})
PORT_KERNEL = "6.17.2-4-pxvirt"  # what the stand-in port installs; the real package names its own


def forced_command_line(user: str, key: str) -> str:
    """The line cloud-init writes for `key` in root's authorized_keys when disable_root is set."""
    message = f"echo 'Please login as the user \\\"{user}\\\" rather than the user \\\"root\\\".';echo;sleep 10;exit 142"
    return f'no-port-forwarding,no-agent-forwarding,no-X11-forwarding,command="{message}" {key}'


def refusal(user: str) -> str:
    return f'Please login as the user "{user}" rather than the user "root".\n\n'


@dataclass(frozen=True)
class AptRepository:
    """A repository the hosts can reach: its key (what Signed-By must hold) and its packages."""

    uri: str
    key_url: str
    key: bytes
    suites: tuple[str, ...]
    packages: frozenset[str]


def etc_hosts_from_cloud_init(host: HostState) -> bytes:
    """cloud-init's /etc/hosts template for Debian (templates/hosts.debian.tmpl)."""
    name = host.hostname_label or host.hostname
    return (f"127.0.1.1 {name}.hosts.oraclevcn.com {name}\n127.0.0.1 localhost\n\n"
            "::1 localhost ip6-localhost ip6-loopback\nff02::1 ip6-allnodes\nff02::2 ip6-allrouters\n").encode()


def boot(host: HostState) -> None:
    """What a boot does: a new boot id, the newest installed kernel, and on a cloud image (only
    there: `image_user` set) cloud-init's per-boot modules. A host the Proxmox VE installer made
    has no cloud-init (pve-installer 9.1.0 installs no cloud-init package), so its hostname and
    /etc/hosts stay as they were written."""
    host.boot_id = str(uuid.uuid4())
    host.rebooting = False
    if host.installed_kernel:
        host.kernel = host.installed_kernel
    if not host.image_user:
        return
    config = b"".join(v for k, v in sorted(host.files.items()) if k.startswith("/etc/cloud/cloud.cfg.d/"))
    if host.hostname_label and not re.search(rb"^preserve_hostname:\s*true\s*$", config, re.M):
        host.hostname = host.hostname_label
    if not re.search(rb"^manage_etc_hosts:\s*false\s*$", config, re.M):
        host.files["/etc/hosts"] = etc_hosts_from_cloud_init(host)


def as_cloud_instance(host: HostState, *, image_user: str, hostname_label: str, key: str, codename: str = "trixie", arch: str = "arm64") -> HostState:
    """`host` as it first boots from a Debian cloud image on OCI: the image user, root behind
    cloud-init's forced command, the hostname label as hostname, no Proxmox VE, no /dev/kvm (A1)."""
    host.files = {}  # the image's files, not those a Proxmox VE installer writes (HostState seeds those)
    host.image_user, host.hostname_label, host.hostname = image_user, hostname_label, hostname_label
    host.pve, host.kvm, host.os_codename, host.arch = False, False, codename, arch
    host.kernel = f"6.12.57+deb13-cloud-{arch}" if codename == "trixie" else f"6.1.0-41-cloud-{arch}"
    host.files["/root/.ssh/authorized_keys"] = (forced_command_line(image_user, key.strip()) + "\n").encode()
    host.files[f"/home/{image_user}/.ssh/authorized_keys"] = (key.strip() + "\n").encode()
    host.files["/etc/hosts"] = etc_hosts_from_cloud_init(host)
    return host


class CloudImageCommands:
    """Handlers for the commands a Debian cloud instance answers differently from a Proxmox host."""

    hosts: dict[str, HostState]
    authorized_key: str
    repositories: dict[str, AptRepository]
    reboot: Callable[[str], None]
    fault: Callable[[str, str], None]
    _base_apt_get: Any

    def root_allowed(self, host: HostState) -> bool:
        """Whether the workspace key logs in as root without cloud-init's forced command."""
        if not host.image_user:
            return True
        blob = self.authorized_key.split()[1]
        for line in host.files.get("/root/.ssh/authorized_keys", b"").decode().splitlines():
            if blob in line.split():
                return not line.startswith("no-port-forwarding") and "command=" not in line.split(blob)[0]
        return False

    def needs_root(self, args: list[str]) -> bool:
        if args[0] in ROOT_COMMANDS and not (args[0] == "apt-get" and args[1:2] in (["-s"], ["--simulate"])):
            return True
        if args[0] == "dpkg" and "--configure" in args:
            return True
        if args[0] in ("tee", "sed", "cp", "mv", "install", "mkdir", "chmod", "curl", "rm"):
            return any(a.startswith(ROOT_PATHS) for a in args[1:])
        return False

    # --- files and the hostname

    def _cmd_tee(self, host: HostState, a: list[str], stdin: str) -> tuple[int, str, str]:
        paths = [x for x in a if not x.startswith("-")]
        for path in paths:
            old = host.files.get(path, b"") if "-a" in a else b""
            host.files[path] = old + stdin.encode()
        return 0, stdin, ""

    def _cmd_sed(self, host: HostState, a: list[str], _: str) -> tuple[int, str, str]:
        """`sed -i '/REGEX/d' FILE` only."""
        script, path = a[-2], a[-1]
        found = re.fullmatch(r"/(.*)/d", script)
        if "-i" not in a or found is None:
            return 1, "", f"sed: the stand-in knows only -i '/re/d', not {script!r}\n"
        if path not in host.files:
            return 2, "", f"sed: can't read {path}: No such file or directory\n"
        pattern = re.compile(found.group(1))
        kept = [line for line in host.files[path].decode().splitlines(keepends=True) if not pattern.search(line)]
        host.files[path] = "".join(kept).encode()
        if path.endswith("authorized_keys"):
            host.authorized = {k for k in host.authorized if any(k == line.strip() for line in kept)}
        return 0, "", ""

    def _cmd_cp(self, host: HostState, a: list[str], _: str) -> tuple[int, str, str]:
        src, dst = [x for x in a if not x.startswith("-")][-2:]
        data = self._read(host, src)
        if data is None:
            return 1, "", f"cp: cannot stat '{src}': No such file or directory\n"
        host.files[dst] = data
        return 0, "", ""

    def _cmd_rm(self, host: HostState, a: list[str], _: str) -> tuple[int, str, str]:
        for path in (x for x in a if not x.startswith("-")):
            host.files.pop(path, None)
        return 0, "", ""

    def _read(self, host: HostState, path: str) -> bytes | None:
        if path == "/proc/sys/kernel/random/boot_id":
            return (host.boot_id + "\n").encode()
        if path == "/etc/os-release":
            version = {"bookworm": "12", "trixie": "13"}.get(host.os_codename, "")
            return (f'PRETTY_NAME="Debian GNU/Linux {version} ({host.os_codename})"\nNAME="Debian GNU/Linux"\nVERSION_ID="{version}"\n'
                    f"VERSION_CODENAME={host.os_codename}\nID=debian\n").encode()
        if path == "/etc/hostname":
            return (host.hostname + "\n").encode()
        return host.files.get(path)

    def _cmd_hostnamectl(self, host: HostState, a: list[str], _: str) -> tuple[int, str, str]:
        if a[:1] == ["set-hostname"] and len(a) > 1:
            host.hostname = a[1]
            return 0, "", ""
        return 0, f" Static hostname: {host.hostname}\n", ""

    def _cmd_uname(self, host: HostState, a: list[str], _: str) -> tuple[int, str, str]:
        return 0, (host.kernel if "-r" in a else "Linux") + "\n", ""

    def _resolve(self, host: HostState, name: str) -> str | None:
        if host.image_user and "/etc/hosts" in host.files:
            for line in host.files["/etc/hosts"].decode().splitlines():
                words = line.split("#", 1)[0].split()
                if len(words) > 1 and name in words[1:]:
                    return words[0]
            label = next((h for h in self.hosts.values() if h.hostname_label == name), None)
            return label.address if label is not None else None
        return None

    def _cmd_curl(self, host: HostState, a: list[str], stdin: str) -> tuple[int, str, str]:
        url = next((x for x in a if x.startswith(("http://", "https://"))), "")
        repo = next((r for r in self.repositories.values() if r.key_url == url), None)
        if repo is None:
            return super()._cmd_curl(host, a, stdin)  # type: ignore[misc, no-any-return]
        if "-o" in a:
            host.files[a[a.index("-o") + 1]] = repo.key
            return 0, "", ""
        return 0, repo.key.decode(errors="replace"), ""

    def _cmd_ip(self, host: HostState, a: list[str], _: str) -> tuple[int, str, str]:
        """`ip -o route show default`: via the subnet's first host address, which OCI reserves for the
        subnet's default gateway (OCI Networking docs, "IP Addresses Reserved for Use by Oracle": the
        first two addresses and the last one of each subnet), learned by DHCP (OCI docs "DHCP Options").
        The NIC name `enp0s6` is the predictable name of the A1 shape's virtio NIC as seen on instances,
        not from a document: tierzero reads the name from this answer and assumes none."""
        if "route" in a:
            gateway = ".".join(host.address.split(".")[:3] + ["1"])
            return 0, f"default via {gateway} dev enp0s6 proto dhcp src {host.address} metric 100\n", ""
        return 0, "", ""

    def _cmd_ifreload(self, host: HostState, a: list[str], _: str) -> tuple[int, str, str]:
        return 0, "", ""

    # --- reboot

    def _cmd_systemctl(self, host: HostState, a: list[str], _: str) -> tuple[int, str, str]:
        if a[:1] == ["reboot"]:
            return self._cmd_reboot(host, [], "")
        return 0, "", ""

    def _cmd_reboot(self, host: HostState, a: list[str], _: str) -> tuple[int, str, str]:
        host.rebooting = True
        self.reboot(host.name)
        return 0, "", ""

    # --- packages

    def _apt_sources(self, host: HostState) -> list[tuple[str, str, str]]:
        """(uri, suite, signed-by) of every deb822 source in sources.list.d."""
        out = []
        for path, data in sorted(host.files.items()):
            if not (path.startswith("/etc/apt/sources.list.d/") and path.endswith(".sources")):
                continue
            fields = dict(re.findall(r"^([A-Za-z-]+):\s*(.*?)\s*$", data.decode(), re.M))
            if fields.get("Enabled", "yes") == "no":
                continue
            for uri in fields.get("URIs", "").split():
                for suite in fields.get("Suites", "").split():
                    out.append((uri.rstrip("/"), suite, fields.get("Signed-By", "")))
        return out

    def _apt_update(self, host: HostState, *, only_known: bool = False) -> tuple[int, str, str]:
        """`apt-get update` over the deb822 sources; `only_known`: sources of repositories the
        sandbox does not play (Debian's, Proxmox's on an installed host) are taken as reachable."""
        out, err, indexed = "", "", []
        for n, (uri, suite, signed_by) in enumerate(self._apt_sources(host), 1):
            repo = self.repositories.get(uri)
            if repo is None and only_known:
                continue
            if repo is None or suite not in repo.suites:
                err += f"E: The repository '{uri} {suite} Release' does not have a Release file.\n"
                continue
            if host.files.get(signed_by) != repo.key:
                err += (f"W: GPG error: {uri} {suite} InRelease: The following signatures couldn't be verified because the public "
                        f"key is not available: NO_PUBKEY 0D9A1950E2EF0603\nE: The repository '{uri} {suite} InRelease' is not signed.\n")
                continue
            out += f"Get:{n} {uri} {suite} InRelease\n"
            indexed.append(uri)
        if err:
            return 100, out, err
        host.apt_indexed = sorted(indexed)
        return 0, out + "Reading package lists... Done\n", ""

    def unlocatable(self, host: HostState, packages: list[str]) -> str | None:
        """The first package only a repository outside Debian has (the port's, Tailscale's) that
        no fetched index lists: apt's `Unable to locate package`."""
        outside = PROXMOX_PACKAGES.union(*(r.packages for r in self.repositories.values()))
        available = set().union(*(r.packages for uri, r in self.repositories.items() if uri in host.apt_indexed))
        return next((p for p in packages if p in outside and p not in available), None)

    def _apt_install(self, host: HostState, packages: list[str]) -> tuple[int, str, str]:
        if host.dpkg_interrupted:
            return 100, "", "E: dpkg was interrupted, you must manually run 'sudo dpkg --configure -a' to correct the problem.\n"
        missing = self.unlocatable(host, packages)
        if missing is not None:
            return 100, "Reading package lists...\n", f"E: Unable to locate package {missing}\n"
        if PROXMOX_PACKAGES & set(packages):
            address = self._resolve(host, host.hostname)
            if address is None or address.startswith("127."):
                host.dpkg_interrupted = True
                host.packages.update(p for p in packages if p not in PROXMOX_PACKAGES)
                return 100, "Setting up pve-cluster ...\n", (
                    "Job for pve-cluster.service failed because the control process exited with error code.\n"
                    f"[main] crit: Unable to resolve node name '{host.hostname}' to a non-loopback IP address - missing entry in '/etc/hosts' or DNS?\n"
                    "dpkg: error processing package pve-cluster (--configure):\n"
                    "E: Sub-process /usr/bin/dpkg returned an error code (1)\n")
            # dpkg is mid-way while the packages unpack: a kill -9 here leaves it interrupted.
            host.dpkg_interrupted = True
            self.fault("apt-install", host.name)
            host.dpkg_interrupted = False
            host.pve = True
            host.installed_kernel = PORT_KERNEL
        host.packages.update(packages)
        return 0, "Reading package lists... Done\n", ""

    def image_apt_get(self, host: HostState, a: list[str]) -> tuple[int, str, str]:
        if a[:1] == ["update"]:
            return self._apt_update(host)
        if a[:1] == ["install"]:
            return self._apt_install(host, [x for x in a[1:] if not x.startswith("-")])
        return 0, "", ""
