"""Stand-in Proxmox VE hosts: one in-process asyncssh server per host on 127.0.0.1, playing the
shell commands tierzero sends (pveversion, pvecm, pveceph, ceph, pveum, tailscale, apt-get, ...)
against one shared in-memory model, so `pvecm add` on pve2 shows up in pve1's `pvecm status`.

The servers run on their own event loop in a daemon thread, so sync and async tests alike can
use them. Faults are attributes and methods of `PveHosts` (see `lose_quorum`, `set_offline`,
`set_ceph_health`, `HostState.kvm`). Every command is recorded in `PveHosts.commands`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shlex
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh

from tierzero.adapters.connections import Connections, Endpoint

GiB = 1024**3
NOT_IN_CLUSTER = "Error: Corosync config '/etc/pve/corosync.conf' does not exist - is this node part of a cluster?\n"


@dataclass
class HostState:
    name: str
    address: str
    memory_total: int = 24 * GiB
    memory_available: int = 20 * GiB
    disk_available: int = 80 * GiB
    kvm: bool = True
    resolves: bool = True  # `getent hosts <hostname>` answers with the node address
    witness: bool = False  # a quorum-witness micro instance, not a PVE host
    packages: set[str] = field(default_factory=set)
    files: dict[str, bytes] = field(default_factory=dict)
    root_pubkey: str = ""
    authorized: set[str] = field(default_factory=set)
    known_hosts: set[str] = field(default_factory=set)
    in_cluster: bool = False
    tailscale_up: bool = False
    ceph_installed: bool = False
    port: int = 0
    offline: bool = False


@dataclass
class CephState:
    initialized: bool = False
    network: str | None = None
    mons: list[str] = field(default_factory=list)
    osds: list[tuple[int, str, str]] = field(default_factory=list)  # (id, host, device)
    pools: dict[str, dict[str, int]] = field(default_factory=dict)
    forced_health: str | None = None  # HEALTH_WARN / HEALTH_ERR from a fault
    forced_checks: dict[str, str] = field(default_factory=dict)
    down: bool = False


@dataclass
class ClusterState:
    name: str | None = None
    members: list[str] = field(default_factory=list)  # node names, join order
    qdevice: str | None = None
    quorum_lost: bool = False
    tokens: dict[str, str] = field(default_factory=dict)  # "root@pam!tierzero" -> secret
    ceph: CephState = field(default_factory=CephState)


class PveHosts:
    """The running stand-in. `connections()` gives the ssh endpoints for the spec's host names."""

    def __init__(self, hosts: list[HostState], authorized_key: str, pve: Any = None) -> None:
        self.hosts = {h.name: h for h in hosts}
        self.authorized_key = authorized_key.strip()
        self.cluster = ClusterState()
        self.pve = pve  # a FakePve: tokens made by `pveum` become valid API tokens there
        self.commands: list[tuple[str, str]] = []
        self.lock = threading.RLock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="pve-hosts", daemon=True)
        self._servers: dict[str, asyncssh.SSHAcceptor] = {}
        self._host_keys = {h.name: asyncssh.generate_private_key("ssh-ed25519") for h in hosts}
        for h in hosts:
            h.root_pubkey = h.root_pubkey or f"ssh-rsa AAAAB3Nza{uuid.uuid4().hex} root@{h.name}"

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> "PveHosts":
        self._thread.start()
        for name in self.hosts:
            self._call(self._listen(name))
        return self

    def stop(self) -> None:
        for name in list(self._servers):
            self._call(self._close(name))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(30)

    async def _listen(self, name: str) -> None:
        host = self.hosts[name]
        keys = asyncssh.import_authorized_keys(self.authorized_key + "\n")
        server = await asyncssh.listen(
            "127.0.0.1", host.port, server_host_keys=[self._host_keys[name]], authorized_client_keys=keys,
            process_factory=lambda proc: self._serve(name, proc), reuse_address=True,
        )
        host.port = server.sockets[0].getsockname()[1]
        self._servers[name] = server

    async def _close(self, name: str) -> None:
        server = self._servers.pop(name, None)
        if server is not None:
            server.close()
            await server.wait_closed()

    def connections(self, connections: Connections | None = None, *, witness_user: str = "root") -> Connections:
        conns = connections or Connections(target="sandbox")
        for h in self.hosts.values():
            extra = {"address": h.address, "user": witness_user if h.witness else "root"}
            conns.add("ssh", h.name, Endpoint("127.0.0.1", h.port, scheme="ssh", verify=False, extra=extra))
        return conns

    # ------------------------------------------------------------------ faults

    def lose_quorum(self) -> None:
        self.cluster.quorum_lost = True
        if self.pve is not None:
            self.pve.lose_quorum()

    def regain_quorum(self) -> None:
        self.cluster.quorum_lost = False
        if self.pve is not None:
            self.pve.regain_quorum()

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

    def set_ceph_health(self, status: str | None, checks: dict[str, str] | None = None, *, down: bool = False) -> None:
        """Force HEALTH_WARN/HEALTH_ERR with checks {code: message}; None goes back to computed health."""
        self.cluster.ceph.forced_health = status
        self.cluster.ceph.forced_checks = dict(checks or {})
        self.cluster.ceph.down = down

    def count(self, prefix: str) -> int:
        return sum(1 for _, cmd in self.commands if cmd.startswith(prefix))

    # ------------------------------------------------------------------ shell

    async def _serve(self, name: str, process: asyncssh.SSHServerProcess) -> None:
        command = process.command or ""
        stdin = ""
        if "cat >" in command or "tee " in command:
            stdin = await process.stdin.read()
        with self.lock:
            self.commands.append((name, command))
            status, out, err = self._shell(self.hosts[name], command, stdin)
        process.stdout.write(out)
        process.stderr.write(err)
        process.exit(status)

    def _shell(self, host: HostState, command: str, stdin: str) -> tuple[int, str, str]:
        """A tiny shell: `a && b`, `a || b`, env prefixes, `yes |`, `sudo`, `2>/dev/null`."""
        status, out, err = 0, "", ""
        for op, part in _split_ops(command):
            if (op == "&&" and status != 0) or (op == "||" and status == 0):
                continue
            status, o, e = self._one(host, part, stdin)
            out, err = out + o, err + e
        return status, out, err

    def _one(self, host: HostState, part: str, stdin: str) -> tuple[int, str, str]:
        part = part.strip().replace("2>/dev/null", "").replace(">/dev/null", "")
        if part.startswith("yes |"):
            part = part[5:].strip()
        append_to = None
        if " | tee -a " in part:
            part, append_to = (x.strip() for x in part.split(" | tee -a ", 1))
            append_to = append_to.split()[-1]
        elif ">>" in part:
            part, append_to = (x.strip() for x in part.split(">>", 1))
        args = shlex.split(part)
        while args and ("=" in args[0] and not args[0].startswith("-") or args[0] in ("sudo", "env")):
            args = args[1:]
        if not args:
            return 0, "", ""
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
        return 0, host.name + "\n", ""

    def _cmd_getent(self, host: HostState, a: list[str], _: str) -> tuple[int, str, str]:
        if a[:1] == ["hosts"] and len(a) > 1:
            name = a[1]
            target = next((h for h in self.hosts.values() if h.name == name or h.address == name), None)
            if target is None:
                return 2, "", ""
            address = target.address if target.resolves else "127.0.1.1"
            return 0, f"{address:<15} {target.name}.sandbox.lan {target.name}\n", ""
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
        if path.endswith(".ssh/id_rsa.pub"):
            return 0, host.root_pubkey + "\n", ""
        if path in host.files:
            return 0, host.files[path].decode(), ""
        return 1, "", f"cat: {path}: No such file or directory\n"

    def _cmd_mkdir(self, *_: Any) -> tuple[int, str, str]:
        return 0, "", ""

    _cmd_chmod = _cmd_mkdir
    _cmd_install = _cmd_mkdir

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
        pkg = a[-1]
        if pkg in host.packages:
            return 0, f"Package: {pkg}\nStatus: install ok installed\n", ""
        return 1, "", f"dpkg-query: package '{pkg}' is not installed and no information is available\n"

    def _cmd_apt_get(self, host: HostState, a: list[str], _: str) -> tuple[int, str, str]:
        if a and a[0] == "install":
            host.packages.update(x for x in a[1:] if not x.startswith("-"))
        return 0, "Reading package lists... Done\n", ""

    def _cmd_curl(self, host: HostState, a: list[str], _: str) -> tuple[int, str, str]:
        host.packages.add("tailscale")  # the tailscale install script
        return 0, "", ""

    def _cmd_pveversion(self, host: HostState, a: list[str], _: str) -> tuple[int, str, str]:
        if host.witness:
            return 127, "", "sh: pveversion: command not found\n"
        return 0, "pve-manager/9.0.10/deadbeefcafe1234 (running kernel: 6.14.8-2-pve)\n", ""

    # --- pvecm

    def _online_members(self) -> list[str]:
        return [m for m in self.cluster.members if not self.hosts[m].offline]

    def _cmd_pvecm(self, host: HostState, a: list[str], _: str) -> tuple[int, str, str]:
        c = self.cluster
        sub = a[0] if a else ""
        if sub == "create":
            if host.in_cluster:
                return 255, "", "cluster config '/etc/pve/corosync.conf' already exists\n"
            c.name, c.members, host.in_cluster = a[1], [host.name], True
            return 0, "Writing corosync key to /etc/corosync/authkey.\nWriting corosync config to /etc/pve/corosync.conf\n", ""
        if sub == "add":
            if host.in_cluster:
                return 255, "", "detected the following error(s):\n* this host already contains virtual guests\n* corosync is already running, is this node already in a cluster?!\n"
            target = next((h for h in self.hosts.values() if h.address == a[1]), None)
            if target is None or target.offline or not target.in_cluster:
                return 255, "", f"unable to connect to {a[1]}: No route to host\n"
            if "--use_ssh" in a and host.root_pubkey not in target.authorized:
                return 255, "", f"root@{a[1]}: Permission denied (publickey,password).\n"
            if c.quorum_lost:
                return 255, "", "cluster not ready - no quorum?\n"
            c.members.append(host.name)
            host.in_cluster = True
            return 0, "Request addition of this node\nJoin request OK, finishing setup locally\nsuccessfully added node '%s' to cluster.\n" % host.name, ""
        if sub in ("status", "nodes"):
            if not host.in_cluster:
                return 2, "", NOT_IN_CLUSTER
            return 0, self._status_text(host, full=sub == "status"), ""
        if sub == "qdevice" and a[1:2] == ["setup"]:
            witness = next((h for h in self.hosts.values() if h.address == a[2]), None)
            if witness is None or witness.offline or "corosync-qnetd" not in witness.packages:
                return 255, "", f"unable to connect to {a[2]} or corosync-qnetd is not installed\n"
            if c.qdevice and "-f" not in a:
                return 255, "", "QDevice already configured!\n"
            for m in c.members:
                if "corosync-qdevice" not in self.hosts[m].packages:
                    return 255, "", f"corosync-qdevice is not installed on node '{m}'\n"
                if self.hosts[m].root_pubkey not in witness.authorized:
                    return 255, "", f"root@{a[2]}: Permission denied (publickey).\n"
            c.qdevice = a[2]
            return 0, "INFO: initializing qnetd server\nINFO: add QDevice to cluster configuration\n", ""
        return 255, "", f"unknown command 'pvecm {' '.join(a)}'\n"

    def _status_text(self, host: HostState, full: bool) -> str:
        c = self.cluster
        online = self._online_members()
        votes = len(online) + (1 if c.qdevice else 0)
        expected = len(c.members) + (1 if c.qdevice else 0)
        quorate = not c.quorum_lost and votes * 2 > expected
        rows = []
        for idx, m in enumerate(c.members, 1):
            if m not in online:
                continue
            flags = "A,V,NMW " if c.qdevice else ""
            who = self.hosts[m].address if full else m
            rows.append(f"0x{idx:08x}          1 {flags:>9}{who}{' (local)' if m == host.name else ''}" if full
                        else f"{idx:>10} {1:>10} {m}{' (local)' if m == host.name else ''}")
        if c.qdevice and full:
            rows.append(f"0x00000000          1 {'':>9}Qdevice")
        members = "\nMembership information\n----------------------\n    Nodeid      Votes " + ("Qdevice Name\n" if c.qdevice else "Name\n") + "\n".join(rows) + "\n"
        if not full:
            return members
        return (
            "Cluster information\n-------------------\n"
            f"Name:             {c.name}\nConfig Version:   {len(c.members) + (1 if c.qdevice else 0)}\nTransport:        knet\nSecure auth:      on\n\n"
            "Quorum information\n------------------\n"
            f"Date:             Sun Nov 22 05:00:00 2026\nQuorum provider:  corosync_votequorum\nNodes:            {len(online)}\n"
            f"Node ID:          0x{c.members.index(host.name) + 1:08x}\nRing ID:          1.1\nQuorate:          {'Yes' if quorate else 'No'}\n\n"
            "Votequorum information\n----------------------\n"
            f"Expected votes:   {expected}\nHighest expected: {expected}\nTotal votes:      {votes}\nQuorum:           {expected // 2 + 1}\n"
            f"Flags:            {'Quorate' if quorate else ''}{' Qdevice' if c.qdevice else ''}\n" + members
        )

    # --- pveum

    def _cmd_pveum(self, host: HostState, a: list[str], _: str) -> tuple[int, str, str]:
        if a[:2] != ["user", "token"] or len(a) < 4:
            return 255, "", f"unknown command 'pveum {' '.join(a)}'\n"
        verb, user = a[2], a[3]
        tokens = self.cluster.tokens
        if verb == "list":
            rows = [{"tokenid": t.split("!", 1)[1], "privsep": 0, "expire": 0} for t in tokens if t.startswith(user + "!")]
            return 0, json.dumps(rows) + "\n", ""
        tokenid = f"{user}!{a[4]}"
        if verb == "add":
            if tokenid in tokens:
                return 255, "", f"Token already exists.\n"
            secret = str(uuid.uuid4())
            tokens[tokenid] = secret
            if self.pve is not None:
                self.pve.apitokens[tokenid] = secret
            privsep = a[a.index("--privsep") + 1] if "--privsep" in a else "1"
            return 0, json.dumps({"full-tokenid": tokenid, "info": {"privsep": privsep}, "value": secret}) + "\n", ""
        if verb in ("remove", "delete"):
            if tokens.pop(tokenid, None) is None:
                return 255, "", f"no such token '{a[4]}' for user '{user}'\n"
            if self.pve is not None:
                self.pve.apitokens.pop(tokenid, None)
            return 0, "", ""
        return 255, "", "unknown pveum token command\n"

    # --- ceph

    def _cmd_pveceph(self, host: HostState, a: list[str], _: str) -> tuple[int, str, str]:
        ceph = self.cluster.ceph
        if a[:1] == ["install"]:
            host.ceph_installed = True
            return 0, "installed Ceph squid successfully!\n", ""
        if not host.ceph_installed:
            return 255, "", "binary not installed: /usr/bin/ceph-mon\n"
        if a[:1] == ["init"]:
            ceph.initialized = True
            ceph.network = a[a.index("--network") + 1] if "--network" in a else None
            return 0, "", ""
        if not ceph.initialized:
            return 255, "", "pveceph configuration not initialized\n"
        if a[:2] == ["mon", "create"]:
            if host.name in ceph.mons:
                return 255, "", f"monitor 'mon.{host.name}' already exists\n"
            ceph.mons.append(host.name)
            return 0, f"creating new monitor keyring\nstarting service 'ceph-mon@{host.name}.service'\n", ""
        if a[:2] == ["osd", "create"]:
            dev = a[2]
            if any(h == host.name and d == dev for _, h, d in ceph.osds):
                return 255, "", f"device '{dev}' is already in use\n"
            ceph.osds.append((len(ceph.osds), host.name, dev))
            return 0, f"create OSD on {dev} (bluestore)\n", ""
        if a[:2] == ["pool", "create"]:
            name = a[2]
            size = int(a[a.index("--size") + 1]) if "--size" in a else 3
            min_size = int(a[a.index("--min_size") + 1]) if "--min_size" in a else 2
            ceph.pools[name] = {"size": size, "min_size": min_size}
            return 0, "", ""
        return 255, "", f"unknown command 'pveceph {' '.join(a)}'\n"

    def _cmd_ceph_volume(self, host: HostState, a: list[str], _: str) -> tuple[int, str, str]:
        ceph = self.cluster.ceph
        if a[:2] == ["lvm", "list"]:
            mine = {str(i): [{"devices": [d], "type": "block"}] for i, h, d in ceph.osds if h == host.name}
            return 0, json.dumps(mine) + "\n", ""
        if a[:2] == ["lvm", "create"]:
            dev = a[a.index("--data") + 1]
            ceph.osds.append((len(ceph.osds), host.name, dev))
            return 0, "--> ceph-volume lvm create successful\n", ""
        return 1, "", "unknown ceph-volume command\n"

    def _cmd_lvs(self, host: HostState, a: list[str], _: str) -> tuple[int, str, str]:
        lv = a[-1]
        return (0, f"  {lv}\n", "") if ("lv:" + lv) in host.files else (5, "", f"  Failed to find logical volume \"{lv}\"\n")

    def _cmd_lvcreate(self, host: HostState, a: list[str], _: str) -> tuple[int, str, str]:
        host.files["lv:" + a[-1] + "/" + a[a.index("-n") + 1]] = b""
        return 0, "  Logical volume created.\n", ""

    def ceph_health(self) -> tuple[str, dict[str, str]]:
        ceph = self.cluster.ceph
        if ceph.forced_health:
            return ceph.forced_health, dict(ceph.forced_checks)
        checks: dict[str, str] = {}
        if len(ceph.mons) < min(3, len([h for h in self.hosts.values() if not h.witness])):
            checks["MON_COUNT"] = f"only {len(ceph.mons)} monitors"
        for name, pool in ceph.pools.items():
            if len(ceph.osds) < pool["size"]:
                checks["PG_DEGRADED"] = f"pool '{name}' has size {pool['size']} but only {len(ceph.osds)} OSDs"
        return ("HEALTH_WARN" if checks else "HEALTH_OK"), checks

    def _cmd_ceph(self, host: HostState, a: list[str], _: str) -> tuple[int, str, str]:
        ceph = self.cluster.ceph
        if not host.ceph_installed or not ceph.initialized:
            return 1, "", "Error initializing cluster client: ObjectNotFound('RADOS object not found (error calling conf_read_file)')\n"
        if ceph.down:
            return 1, "", "[errno 110] RADOS timed out (error connecting to the cluster)\n"
        as_json = "--format" in a and a[a.index("--format") + 1].startswith("json")
        words = [x for x in a if not x.startswith("--") and x not in ("json", "json-pretty")]
        if words[:2] == ["health", "detail"] or words[:1] in (["-s"], ["status"]):
            status, checks = self.ceph_health()
            js = {"status": status, "checks": {k: {"severity": status, "summary": {"message": v}} for k, v in checks.items()}}
            if words[:1] in (["-s"], ["status"]):
                return 0, json.dumps({"fsid": "00000000-sandbox", "health": js}) + "\n", ""
            if as_json:
                return 0, json.dumps(js) + "\n", ""
            text = status + ("" if not checks else " " + "; ".join(checks.values())) + "\n"
            text += "".join(f"[{'WRN' if status == 'HEALTH_WARN' else 'ERR'}] {k}: {v}\n" for k, v in checks.items())
            return 0, text, ""
        if words[:2] == ["mon", "dump"]:
            return 0, json.dumps({"mons": [{"rank": i, "name": m} for i, m in enumerate(ceph.mons)]}) + "\n", ""
        if words[:3] == ["osd", "pool", "ls"]:
            return 0, "".join(p + "\n" for p in ceph.pools), ""
        if words[:2] == ["auth", "get"]:
            return 0, "[client.bootstrap-osd]\n\tkey = AQD-sandbox==\n", ""
        return 1, "", f"unknown ceph command {' '.join(a)}\n"

    # --- tailscale

    def _cmd_tailscale(self, host: HostState, a: list[str], _: str) -> tuple[int, str, str]:
        if "tailscale" not in host.packages:
            return 127, "", "sh: tailscale: command not found\n"
        if a[:1] == ["status"]:
            state = "Running" if host.tailscale_up else "NeedsLogin"
            return (0 if host.tailscale_up else 1), json.dumps({"BackendState": state, "Self": {"HostName": host.name}}) + "\n", ""
        if a[:1] == ["up"]:
            if not any(x.startswith("--authkey=tskey-") or x.startswith("--auth-key=tskey-") for x in a):
                return 1, "", "invalid key: API key does not exist\n"
            host.tailscale_up = True
            return 0, "", ""
        return 1, "", "unknown tailscale command\n"


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


def start_pve_hosts(
    nodes: list[tuple[str, str]],
    authorized_key_file: Path | str,
    *,
    witnesses: list[tuple[str, str]] = (),  # type: ignore[assignment]
    pve: Any = None,
    kvm: bool = True,
) -> PveHosts:
    """Start one SSH stand-in per (name, address) host, plus quorum witnesses; returns the handle."""
    key = Path(authorized_key_file).read_text()
    hosts = [HostState(name, addr, kvm=kvm) for name, addr in nodes]
    hosts += [HostState(name, addr, witness=True, memory_total=1 * GiB, memory_available=GiB // 2) for name, addr in witnesses]
    return PveHosts(hosts, key, pve=pve).start()


def hosts_for_spec(spec: Any) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(pve hosts, witnesses) with sandbox addresses from the spec (explicit or 10.99.0.x)."""
    px = spec.proxmox
    nodes = [(n.name, n.address or f"10.99.0.{i + 11}") for i, n in enumerate(px.nodes)]
    witnesses = []
    if px.qdevice is not None:
        host = px.qdevice.host
        witnesses.append((host, host if host[:1].isdigit() else "10.99.0.250"))
    return nodes, witnesses
