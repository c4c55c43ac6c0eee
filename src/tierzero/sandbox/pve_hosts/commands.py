"""The Proxmox-specific commands of the stand-in hosts (pvecm, pveum, pveceph/ceph, tailscale)
and the shared in-memory model they act on. Mixed into `tierzero.sandbox.pve_hosts.PveHosts`."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

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
    public_address: str | None = None  # where the outside reaches it (a cloud instance's public IP)
    packages: set[str] = field(default_factory=set)
    files: dict[str, bytes] = field(default_factory=dict)
    root_pubkey: str = ""
    authorized: set[str] = field(default_factory=set)
    known_hosts: set[str] = field(default_factory=set)
    in_cluster: bool = False
    tailscale_up: bool = False
    ceph_installed: bool = False
    # Linux bridges in /etc/network/interfaces: the installer writes vmbr0 only (pve-installer
    # 9.1.0 Proxmox/Install.pm 1093-1177).
    bridges: list[str] = field(default_factory=lambda: ["vmbr0"])
    port: int = 0
    offline: bool = False
    # A cloud instance booted from a Debian cloud image (see tierzero.sandbox.pve_hosts.cloud_image):
    # its default user, the hostname OCI gave it (hostname_label), and no Proxmox VE until installed.
    image_user: str | None = None
    hostname: str = ""
    hostname_label: str | None = None
    pve: bool = True
    os_codename: str = "trixie"
    arch: str = "amd64"
    boot_id: str = ""
    kernel: str = "6.17.2-1-pve"
    installed_kernel: str | None = None
    apt_indexed: list[str] = field(default_factory=list)  # repository URIs `apt-get update` fetched
    dpkg_interrupted: bool = False
    rebooting: bool = False

    def __post_init__(self) -> None:
        self.hostname = self.hostname or self.name
        self.boot_id = self.boot_id or str(uuid.uuid4())


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
    token_privsep: dict[str, int] = field(default_factory=dict)  # token -> privsep (pveum's default: 1)
    roles: dict[str, list[str]] = field(default_factory=dict)  # custom roles -> privileges
    acl: list[dict[str, Any]] = field(default_factory=list)  # {path, type, ugid, roleid, propagate}
    ceph: CephState = field(default_factory=CephState)


class PveCommands:
    """Handlers `_cmd_<name>(host, args, stdin) -> (exit status, stdout, stderr)`."""

    hosts: dict[str, HostState]
    cluster: ClusterState
    pve: Any

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
