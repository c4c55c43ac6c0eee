"""Stand-in Proxmox VE hosts: one in-process asyncssh server per host on 127.0.0.1, playing the
shell commands tierzero sends (pveversion, pvecm, pveceph, ceph, pveum, tailscale, apt-get, ...)
against one shared in-memory model, so `pvecm add` on pve2 shows up in pve1's `pvecm status`.

The servers run on their own event loop in a daemon thread, so sync and async tests alike can
use them. Faults are attributes and methods of `PveHosts` (see `lose_quorum`, `set_offline`,
`set_ceph_health`, `HostState.kvm`). Every command is recorded in `PveHosts.commands`.

With a world file (`start_pve_hosts(..., world=...)`, or the sandbox's "pve-hosts" stand-in when
it persists) the state is restored at start and saved after every command that changed it, before
the command's exit status reaches the client (see `tierzero.sandbox.pve_hosts`).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import shlex
import socket
import threading
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from tierzero.adapters.connections import Connections, Endpoint
from tierzero.sandbox.pve_hosts.access import PveumCommands
from tierzero.sandbox.pve_hosts.cloud_image import PVE_COMMANDS, AptRepository, CloudImageCommands, boot, refusal
from tierzero.sandbox.pve_hosts.guest_commands import GuestCommands
from tierzero.sandbox.pve_hosts.commands import CephState, ClusterState, HostState, PveCommands, failing_repositories

if TYPE_CHECKING:
    import asyncssh

__all__ = ["CephState", "ClusterState", "HostState", "PveHosts"]


class PveHosts(CloudImageCommands, PveumCommands, GuestCommands, PveCommands):
    """The running stand-in. `connections()` gives the ssh endpoints for the spec's host names."""

    def __init__(self, hosts: list[HostState], authorized_key: str, pve: Any = None, host_key: asyncssh.SSHKey | Path | None = None) -> None:
        self.hosts = {h.name: h for h in hosts}
        self.authorized_key = authorized_key.strip()
        self.cluster = ClusterState()
        self._pve: Any = None
        self.pve = pve  # a FakePve: tokens made by `pveum` become valid API tokens there
        # Writes the world document when the state changed; called under `lock` (see save_world).
        self.persist: Callable[["PveHosts"], None] | None = None
        self.commands: list[tuple[str, str]] = []
        # `pct exec <vmid> -- sh -c <script>`: (host, vmid, script, stdin) -> (status, stdout, stderr).
        # The default succeeds silently; a services test may plug in its own container.
        self.pct_handler: Any = lambda host, vmid, script, stdin: (0, "", "")
        # How a host fetches a URL (curl): url -> bytes, or raises; None: no network.
        self.fetch_url: Callable[[str], bytes] | None = None
        # Repositories the hosts reach by URI (the PXVIRT mirror's stand-in), their keys served at key_url.
        self.repositories: dict[str, AptRepository] = {}
        self.reboot_seconds = 0.2
        self._sessions: dict[str, set[asyncssh.SSHServerConnection]] = {}
        # Called at the moments a test may kill the sandbox in (`fault(moment, host)`): "apt-install"
        # while dpkg unpacks (the world saved with dpkg interrupted), "reboot" while the host is down.
        self.faults: dict[str, Callable[[str], None]] = {}
        self.lock = threading.RLock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="pve-hosts", daemon=True)
        self._servers: dict[str, asyncssh.SSHAcceptor] = {}
        self._waiting: dict[str, socket.socket] = {}  # listening, no client yet: asyncssh not started
        self._starting: dict[str, asyncio.Task[None]] = {}  # a first client came: the server is starting
        self._host_key = host_key  # a key, or the file holding it (read when the first client comes)
        self._host_keys: dict[str, asyncssh.SSHKey] = {}
        for h in hosts:
            h.root_pubkey = h.root_pubkey or f"ssh-rsa AAAAB3Nza{uuid.uuid4().hex} root@{h.name}"

    @property
    def pve(self) -> Any:
        return self._pve

    @pve.setter
    def pve(self, value: Any) -> None:
        self._pve = value
        self.sync_pve()

    def sync_pve(self) -> None:
        """Bring the linked fakepve in line with the hosts (it may start before or after them, and
        the hosts may come back from a saved world): `pveum` tokens are API tokens there, and a lost
        quorum or an offline node shows in the API too."""
        pve = self._pve
        if pve is None:
            return
        self.sync_access()
        ceph = self.cluster.ceph
        pve.ceph.update(health=ceph.forced_health or "HEALTH_OK", down=ceph.down)
        if self.cluster.quorum_lost:
            pve.lose_quorum()
        for h in self.hosts.values():
            if h.offline and not h.witness and h.name in pve.nodes:
                pve.set_node_offline(h.name, True)

    def save_world(self) -> None:
        """Write the world document if the state changed since the last write (no-op without one)."""
        with self.lock:
            if self.persist is not None:
                self.persist(self)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> "PveHosts":
        self._thread.start()
        for host in self.hosts.values():
            if host.rebooting:  # the machine went on booting while nobody watched (a killed sandbox)
                boot(host)
        self.save_world()
        for name, host in self.hosts.items():
            if not host.offline:  # a host saved offline stays unreachable until set_offline(name, False)
                self._call(self._listen(name))
        return self

    def stop(self) -> None:
        for name in [*self._waiting, *self._starting, *self._servers]:
            self._call(self._close(name))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(30)

    async def _listen(self, name: str) -> None:
        """Listen on the host's port now, start its SSH server when the first client connects.
        Why: importing asyncssh costs about half a second on a loaded machine (it probes for
        liboqs with ldconfig, gcc and ld), and a sandbox run that never opens an SSH connection
        (a no-op re-run: its checks use the Proxmox API) should not pay it. A client sees no
        difference: the kernel queues its connection until the server takes it."""
        host = self.hosts[name]
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", host.port))
        sock.listen(100)
        sock.setblocking(False)
        host.port = sock.getsockname()[1]
        self._waiting[name] = sock
        self._loop.add_reader(sock.fileno(), self._first_client, name)

    def _first_client(self, name: str) -> None:
        sock = self._waiting.pop(name, None)
        if sock is not None:
            self._loop.remove_reader(sock.fileno())
            self._starting[name] = self._loop.create_task(self._serve_ssh(name, sock))

    async def _serve_ssh(self, name: str, sock: socket.socket) -> None:
        import asyncssh

        from tierzero.sandbox.pve_hosts.login import Login

        # PRE-SEEDED, and why: tierzero logs in with the workspace key, which the user puts in root's
        # authorized_keys when installing (the installer's `root-ssh-keys`, pve-installer 9.1.0
        # Install.pm 1538-1542) or afterwards (the README's prerequisite); nothing else is trusted.
        try:
            self._servers[name] = await asyncssh.listen(
                sock=sock, server_host_keys=[self._host_key_for(name)], server_factory=lambda: Login(self, name),
                process_factory=lambda proc: self._serve(name, proc),
            )
        except BaseException:
            sock.close()  # the waiting client sees the connection reset, not a hang
            raise
        finally:
            self._starting.pop(name, None)

    def _host_key_for(self, name: str) -> asyncssh.SSHKey:
        import asyncssh

        if name not in self._host_keys:
            if isinstance(self._host_key, Path):
                self._host_key = asyncssh.read_private_key(str(self._host_key))
            self._host_keys[name] = self._host_key or asyncssh.generate_private_key("ssh-ed25519")
        return self._host_keys[name]

    async def _close(self, name: str) -> None:
        sock = self._waiting.pop(name, None)
        if sock is not None:
            self._loop.remove_reader(sock.fileno())
            sock.close()
        starting = self._starting.get(name)
        if starting is not None:
            await asyncio.wait([starting])
        server = self._servers.pop(name, None)
        if server is not None:
            server.close()
            await server.wait_closed()
        for conn in list(self._sessions.pop(name, ())):
            conn.abort()  # a machine going down drops its sessions

    def fault(self, moment: str, name: str) -> None:
        hook = self.faults.get(moment)
        if hook is not None:
            self.save_world()
            hook(name)

    def reboot(self, name: str) -> None:
        """`systemctl reboot`: the sessions drop a moment later, the host boots (`cloud_image.boot`:
        the newest kernel runs; cloud-init's per-boot modules on a cloud image) and listens again on the same port."""

        async def cycle() -> None:
            await asyncio.sleep(0.05)  # the command's own answer leaves first
            await self._close(name)
            with self.lock:
                self.save_world()
                self.fault("reboot", name)
            await asyncio.sleep(self.reboot_seconds)
            with self.lock:
                boot(self.hosts[name])
                self.save_world()
            await self._listen(name)

        self._loop.call_soon_threadsafe(lambda: self._loop.create_task(cycle()))

    def connections(self, connections: Connections | None = None) -> Connections:
        """The spec's Proxmox hosts as ("ssh", name) endpoints, and the network route that plays
        every host (witnesses included) at its addresses: a witness is not published by name, the
        product finds it from the spec or the cloud phase's outputs, as it must on a real run."""
        conns = connections or Connections(target="sandbox")
        for h in self.hosts.values():
            if not h.witness:
                conns.add("ssh", h.name, Endpoint("127.0.0.1", h.port, scheme="ssh", verify=False,
                                                 extra={"address": h.address, "user": "root"}))
        previous = conns.route

        def route(endpoint: Endpoint) -> Endpoint | None:
            found = self.route(endpoint)
            return found if found is not None or previous is None else previous(endpoint)

        conns.route = route
        return conns

    def route(self, endpoint: Endpoint) -> Endpoint | None:
        """The stand-in SSH server playing the host at `endpoint` (an address, port 22), or None."""
        if endpoint.scheme != "ssh":
            return None
        for h in self.hosts.values():
            if endpoint.host in (h.address, h.public_address) and not h.offline:
                return Endpoint("127.0.0.1", h.port, scheme="ssh", verify=False, extra=dict(endpoint.extra))
        return None

    # ------------------------------------------------------------------ faults

    def lose_quorum(self) -> None:
        self.cluster.quorum_lost = True
        if self.pve is not None:
            self.pve.lose_quorum()
        self.save_world()

    def regain_quorum(self) -> None:
        self.cluster.quorum_lost = False
        if self.pve is not None:
            self.pve.regain_quorum()
        self.save_world()

    def set_offline(self, name: str, offline: bool = True) -> None:
        """The host stops answering SSH (connection refused) and drops out of the membership."""
        host = self.hosts[name]
        host.offline = offline
        if offline:
            self._call(self._close(name))
        else:
            self._call(self._listen(name))
        if self.pve is not None and not host.witness:
            self.pve.set_node_offline(name, offline)
        self.save_world()

    def set_ceph_health(self, status: str | None, checks: dict[str, str] | None = None, *, down: bool = False) -> None:
        """Force HEALTH_WARN/HEALTH_ERR with checks {code: message}; None goes back to computed health."""
        self.cluster.ceph.forced_health = status
        self.cluster.ceph.forced_checks = dict(checks or {})
        self.cluster.ceph.down = down
        self.sync_pve()  # the API's view of Ceph (cluster/ceph/status) shows the same fault
        self.save_world()

    def count(self, prefix: str) -> int:
        return sum(1 for _, cmd in self.commands if cmd.startswith(prefix))

    # ------------------------------------------------------------------ shell

    async def _serve(self, name: str, process: asyncssh.SSHServerProcess) -> None:
        command = process.command or ""
        user = str(process.get_extra_info("username") or "root")
        host = self.hosts[name]
        if user == "root" and not self.root_allowed(host):
            process.stdout.write(refusal(host.image_user or "root"))  # cloud-init's forced command runs instead
            process.exit(142)
            return
        stdin = ""
        if "cat >" in command or re.match(r"^(sudo\s+)?tee\s", command):
            stdin = await process.stdin.read()
        with self.lock:
            self.commands.append((name, command))
            status, out, err = self._shell(host, command, stdin, user)
            self.save_world()  # on disk before the client learns the command finished
        process.stdout.write(out)
        process.stderr.write(err)
        process.exit(status)

    def _shell(self, host: HostState, command: str, stdin: str, user: str = "root") -> tuple[int, str, str]:
        """A tiny shell: `a && b`, `a || b`, env prefixes, `yes |`, `sudo`, `sh -c`, `2>/dev/null`."""
        status, out, err = 0, "", ""
        for op, part in _split_ops(command):
            if (op == "&&" and status != 0) or (op == "||" and status == 0):
                continue
            status, o, e = self._one(host, part, stdin, user)
            out, err = out + o, err + e
        return status, out, err

    def _one(self, host: HostState, part: str, stdin: str, user: str = "root") -> tuple[int, str, str]:
        if part.strip().startswith("pct "):  # the quoted script is the container's business
            return self._cmd_pct(host, shlex.split(part)[1:], stdin)
        part = part.strip().replace("2>/dev/null", "").replace(">/dev/null", "")
        if part.startswith("yes |"):
            part = part[5:].strip()
        append_to = None
        sudo_tee = " | sudo tee -a " in part
        part = part.replace(" | sudo tee -a ", " | tee -a ")
        if " | tee -a " in part:
            part, append_to = (x.strip() for x in part.split(" | tee -a ", 1))
            append_to = append_to.split()[-1]
        elif ">>" in part:
            part, append_to = (x.strip() for x in part.split(">>", 1))
        args = shlex.split(part)
        as_root = user == "root"
        while args and ("=" in args[0] and not args[0].startswith("-") or args[0] in ("sudo", "env")):
            as_root = as_root or (args[0] == "sudo" and user in ("root", host.image_user))
            args = args[1:]
        if not args:
            return 0, "", ""
        if args[:2] == ["sh", "-c"] and len(args) == 3:  # `[sudo] sh -c SCRIPT`: the script, as root under sudo
            return self._shell(host, args[2], stdin, "root" if as_root else user)
        if args[0] in PVE_COMMANDS and not host.pve:
            return 127, "", f"sh: 1: {args[0]}: not found\n"
        if not as_root and self.needs_root(args) and not (append_to or "").startswith(f"/home/{user}/"):
            if args[0] == "apt-get":
                return 100, "", "E: Could not open lock file /var/lib/dpkg/lock-frontend - open (13: Permission denied)\n"
            return 1, "", f"{args[0]}: Permission denied (run it as root)\n"
        if append_to is not None and append_to.startswith(("/etc/", "/root/")) and not (as_root or sudo_tee and user in ("root", host.image_user)):
            return 1, "", f"tee: {append_to}: Permission denied\n"
        handler = getattr(self, "_cmd_" + args[0].replace("-", "_"), None)
        if handler is None:
            return 127, "", f"sh: {args[0]}: command not found\n"
        status, out, err = handler(host, args[1:], stdin)
        if append_to is not None and status == 0:
            self._append(host, append_to, out)
            out = ""
        return status, out, err

    def _append(self, host: HostState, path: str, text: str) -> None:
        if path.endswith("authorized_keys"):
            host.authorized.update(line.strip() for line in text.splitlines() if line.strip())
        elif path.endswith("known_hosts"):
            host.known_hosts.update(line.split()[0] for line in text.splitlines() if line.strip())
        host.files[path] = host.files.get(path, b"") + text.encode()

    # --- generic shell commands

    def _cmd_echo(self, host: HostState, a: list[str], _: str) -> tuple[int, str, str]:
        return 0, " ".join(a) + "\n", ""

    def _cmd_true(self, *_: Any) -> tuple[int, str, str]:
        return 0, "", ""

    def _cmd_hostname(self, host: HostState, a: list[str], _: str) -> tuple[int, str, str]:
        return 0, host.hostname + "\n", ""

    def _cmd_getent(self, host: HostState, a: list[str], _: str) -> tuple[int, str, str]:
        """`getent hosts NAME` from the host's /etc/hosts (no DNS for the sandbox's names): a fresh
        install knows only itself (see `fresh_pve_files`); a cloud instance also asks the VCN resolver."""
        if a[:1] == ["hosts"] and len(a) > 1 and host.image_user:
            found = self._resolve(host, a[1])
            return (0, f"{found:<15} {a[1]}\n", "") if found else (2, "", "")
        if a[:1] == ["hosts"] and len(a) > 1:
            name = a[1]
            text = host.files.get("/etc/hosts", b"").decode(errors="replace")
            for line in text.splitlines():
                fields = line.split("#", 1)[0].split()
                if len(fields) > 1 and (name in fields[1:] or name == fields[0]):
                    return 0, f"{fields[0]:<15} {' '.join(fields[1:])}\n", ""
            return 2, "", ""
        return 1, "", ""

    def _cmd_test(self, host: HostState, a: list[str], _: str) -> tuple[int, str, str]:
        path = a[-1]
        if path == "/dev/kvm":
            return (0 if host.kvm else 1), "", ""
        if path == "/etc/pve/ceph.conf":
            return (0 if self.cluster.ceph.initialized and host.in_cluster else 1), "", ""
        return (0 if path in host.files else 1), "", ""

    def _cmd_free(self, host: HostState, a: list[str], _: str) -> tuple[int, str, str]:
        used = host.memory_total - host.memory_available
        return 0, (
            "               total        used        free      shared  buff/cache   available\n"
            f"Mem:    {host.memory_total:>12} {used:>11} {host.memory_available:>11} {0:>11} {0:>11} {host.memory_available:>11}\n"
            f"Swap:   {0:>12} {0:>11} {0:>11}\n"
        ), ""

    def _cmd_df(self, host: HostState, a: list[str], _: str) -> tuple[int, str, str]:
        return 0, f"       Avail\n{host.disk_available:>12}\n", ""

    def _cmd_cat(self, host: HostState, a: list[str], stdin: str) -> tuple[int, str, str]:
        if a and a[0] == ">":
            host.files[a[1]] = stdin.encode()
            return 0, "", ""
        path = a[0] if a else ""
        special = self._read(host, path) if path.startswith(("/proc/", "/etc/os-release", "/etc/hostname")) else None
        if special is not None:
            return 0, special.decode(), ""
        if path.endswith(".ssh/id_rsa.pub"):
            return 0, host.root_pubkey + "\n", ""
        if path == "/etc/pve/pve-root-ca.pem" and host.pve and getattr(self._pve, "certfile", None):
            # The cluster CA pve-cluster creates at install (pve-docs 9.1 "Certificate Management"):
            # here the certificate the linked fakepve serves its API with, so a client pinning it verifies.
            return 0, Path(self._pve.certfile).read_text(), ""
        if path in host.files:
            return 0, host.files[path].decode(), ""
        return 1, "", f"cat: {path}: No such file or directory\n"

    def _cmd_mkdir(self, *_: Any) -> tuple[int, str, str]:
        return 0, "", ""

    _cmd_chmod = _cmd_mkdir
    _cmd_install = _cmd_mkdir
    _cmd_umask = _cmd_mkdir  # files keep no mode here; the product's scripts set it (see render/remote_files)

    def _cmd_mv(self, host: HostState, a: list[str], _: str) -> tuple[int, str, str]:
        """`mv [-f] SRC DST`: renames a file (GNU coreutils mv; a missing source fails with this message)."""
        src, dst = [x for x in a if not x.startswith("-")][-2:]
        if src not in host.files:
            return 1, "", f"mv: cannot stat '{src}': No such file or directory\n"
        host.files[dst] = host.files.pop(src)
        return 0, "", ""

    def _cmd_sha256sum(self, host: HostState, a: list[str], _: str) -> tuple[int, str, str]:
        data = host.files.get(a[0])
        if data is None:
            return 1, "", f"sha256sum: {a[0]}: No such file or directory\n"
        return 0, f"{hashlib.sha256(data).hexdigest()}  {a[0]}\n", ""

    def _cmd_grep(self, host: HostState, a: list[str], _: str) -> tuple[int, str, str]:
        needle, path = a[-2], a[-1]
        if path.endswith("authorized_keys"):
            return (0 if needle in host.authorized else 1), "", ""
        return (0 if needle.encode() in host.files.get(path, b"") else 1), "", ""

    def _cmd_ssh_keygen(self, host: HostState, a: list[str], _: str) -> tuple[int, str, str]:
        if "-F" in a:
            return (0 if a[a.index("-F") + 1] in host.known_hosts else 1), "", ""
        return 0, "", ""

    def _cmd_ssh_keyscan(self, host: HostState, a: list[str], _: str) -> tuple[int, str, str]:
        return 0, f"{a[-1]} ssh-ed25519 AAAAC3NzaSANDBOX{a[-1]}\n", ""

    def _cmd_command(self, host: HostState, a: list[str], _: str) -> tuple[int, str, str]:
        tool = a[-1]
        have = {"ceph-mon": host.ceph_installed, "tailscale": "tailscale" in host.packages}.get(tool, True)
        return (0, f"/usr/bin/{tool}\n", "") if have else (1, "", "")

    def _cmd_dpkg(self, host: HostState, a: list[str], _: str) -> tuple[int, str, str]:
        if "--print-architecture" in a:
            return 0, host.arch + "\n", ""
        if "--configure" in a:
            host.dpkg_interrupted = False
            if "pve-cluster" in host.packages or "proxmox-ve" in host.packages:
                host.pve = True
            return 0, "", ""
        pkg = a[-1]
        if pkg in host.packages:
            return 0, f"Package: {pkg}\nStatus: install ok installed\n", ""
        return 1, "", f"dpkg-query: package '{pkg}' is not installed and no information is available\n"

    def _cmd_apt_get(self, host: HostState, a: list[str], _: str) -> tuple[int, str, str]:
        """`apt-get update` fails (exit 100) while an enterprise repository is enabled on a host
        without a subscription: 401 Unauthorized (pve-docs pve-package-repos.adoc 113-120). apt's
        exact lines are not confirmed from apt's source. A Debian or Proxmox package installs; one
        only another repository has (Tailscale's) needs that repository indexed first, as on a cloud
        instance (`cloud_image`, which also plays a cloud instance's whole package manager)."""
        if host.image_user:
            return self.image_apt_get(host, a)
        if a and a[0] == "update":
            failing = [] if host.subscribed else failing_repositories(host.files)
            if failing:
                lines = "".join(f"E: Failed to fetch {uri}/dists/trixie/InRelease  401  Unauthorized\n" for uri in failing)
                return 100, "Reading package lists... Done\n", lines + "E: Some index files failed to download. They have been ignored, or old ones used instead.\n"
            return self._apt_update(host, only_known=True)
        if a and a[0] == "install":
            packages = [x for x in a[1:] if not x.startswith("-")]
            missing = self.unlocatable(host, packages)
            if missing is not None:
                return 100, "Reading package lists...\n", f"E: Unable to locate package {missing}\n"
            host.packages.update(packages)
        return 0, "Reading package lists... Done\n", ""

    def _cmd_pveversion(self, host: HostState, a: list[str], _: str) -> tuple[int, str, str]:
        if host.witness:
            return 127, "", "sh: pveversion: command not found\n"
        return 0, "pve-manager/9.1.2/9d436f37a0ac4172 (running kernel: 6.17.2-1-pve)\n", ""

def _split_ops(command: str) -> list[tuple[str, str]]:
    """Split on top-level && and || (left to right, no grouping, quotes respected)."""
    parts: list[tuple[str, str]] = []
    op, buf, quote, i = "", "", "", 0
    while i < len(command):
        ch = command[i]
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif command[i:i + 2] in ("&&", "||"):
            parts.append((op, buf))
            op, buf = command[i:i + 2], ""
            i += 2
            continue
        buf += ch
        i += 1
    parts.append((op, buf))
    return parts
