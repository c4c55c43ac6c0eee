"""The Proxmox-specific commands of the stand-in hosts (pvecm, pveum, pveceph/ceph, tailscale)
and the shared in-memory model they act on. Mixed into `tierzero.sandbox.pve_hosts.PveHosts`."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

GiB = 1024**3
SOURCES = "/etc/apt/sources.list.d"
DOMAIN = "sandbox.lan"  # the search domain the hosts were installed with


def fresh_pve_files(name: str, address: str, resolves: bool = True) -> dict[str, bytes]:
    """Files of a fresh Proxmox VE 9.1 install that tierzero's steps read or change:
    - /etc/hosts holds localhost and the host's own name only. Source: proxmox/pve-installer
      9.1.0 Proxmox/Install.pm 1071-1087 (a host that did not come from the installer may map
      its name to 127.0.1.1, Debian's default: `resolves=False`).
    - APT: the enterprise repositories of pve-manager (pve-enterprise.sources) and Ceph
      (ceph.sources) are enabled, no no-subscription repository is. Source: pve-manager 9.1.2
      configs/pve-sources.sources, configs/Makefile 8; pve-docs pve-package-repos.adoc 96-137
      and 184-253 (recorded in research/pve.md section 7)."""
    own = f"{address} {name}.{DOMAIN} {name}" if resolves else f"127.0.1.1 {name}.{DOMAIN} {name}"
    enterprise = "Types: deb\nURIs: https://enterprise.proxmox.com/debian/{}\nSuites: trixie\nComponents: {}\n" \
                 "Signed-By: /usr/share/keyrings/proxmox-archive-keyring.gpg\n"
    return {
        "/etc/hosts": f"127.0.0.1 localhost.localdomain localhost\n{own}\n".encode(),
        "/etc/os-release": b'PRETTY_NAME="Debian GNU/Linux 13 (trixie)"\nVERSION_ID="13"\nVERSION_CODENAME=trixie\nID=debian\n',
        f"{SOURCES}/debian.sources": b"Types: deb deb-src\nURIs: http://deb.debian.org/debian/\nSuites: trixie trixie-updates\n"
                                    b"Components: main contrib non-free-firmware\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n",
        f"{SOURCES}/pve-enterprise.sources": enterprise.format("pve", "pve-enterprise").encode(),
        f"{SOURCES}/ceph.sources": enterprise.format("ceph-squid", "enterprise").encode(),
    }


def failing_repositories(files: dict[str, bytes]) -> list[str]:
    """The enabled APT sources of enterprise.proxmox.com (deb822 stanzas without `Enabled: no`,
    uncommented one-line `deb` entries): a host without a subscription gets 401 from them."""
    out = []
    for path, data in sorted(files.items()):
        if not path.startswith(SOURCES + "/"):
            continue
        text = data.decode(errors="replace")
        if path.endswith(".sources"):
            for stanza in text.split("\n\n"):
                fields = dict(line.split(":", 1) for line in stanza.splitlines() if ":" in line and not line.startswith("#"))
                if "enterprise.proxmox.com" in fields.get("URIs", "") and fields.get("Enabled", "yes").strip().lower() != "no":
                    out.append(fields["URIs"].strip())
        elif path.endswith(".list"):
            out += [line.split()[1] for line in text.splitlines() if line.startswith("deb ") and "enterprise.proxmox.com" in line]
    return out
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

    subscribed: bool = False  # a fresh install has no subscription key
    # Disks: the installer's on /dev/sda, one empty disk /dev/sdb. PRE-SEEDED hardware, like the
    # memory above: the blueprint's osd_device is /dev/sdb.
    disks: dict[str, bool] = field(default_factory=lambda: {"/dev/sda": True, "/dev/sdb": False})  # device -> in use

    def __post_init__(self) -> None:
        self.hostname = self.hostname or self.name
        self.boot_id = self.boot_id or str(uuid.uuid4())
        if not self.witness and not self.image_user and not self.files:  # a host from the Proxmox VE installer
            self.files = fresh_pve_files(self.name, self.address, self.resolves)


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
    # user.cfg's users: the installer writes root@pam only (pve-installer 9.1.0 Proxmox/Install.pm, user.cfg)
    users: list[str] = field(default_factory=lambda: ["root@pam"])
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
            return self._pvecm_add(host, a)
        if sub in ("status", "nodes"):
            if not host.in_cluster:
                return 2, "", NOT_IN_CLUSTER
            return 0, self._status_text(host, full=sub == "status"), ""
        if sub == "qdevice" and a[1:2] == ["setup"]:
            return self._pvecm_qdevice_setup(host, a)
        return 255, "", f"unknown command 'pvecm {' '.join(a)}'\n"

    def _guests_on(self, node: str) -> list[int]:
        pve = getattr(self, "pve", None)
        if pve is None:
            return []
        return [g.vmid for g in [*getattr(pve, "vms", []), *getattr(pve, "cts", [])] if getattr(g, "node", None) == node]

    def _pvecm_add(self, host: HostState, a: list[str]) -> tuple[int, str, str]:
        """`pvecm add <address> --use_ssh`: assert_joinable's refusals, all listed at once (an
        existing authkey and corosync.conf, guests on this host, corosync running), then
        ssh-copy-id to the cluster node ("unable to copy ssh ID"). Source: proxmox/pve-cluster
        9.0.7 src/PVE/Cluster/Setup.pm assert_joinable 646-699, src/PVE/CLI/pvecm.pm add 431-447."""
        c = self.cluster
        errors = []
        if host.in_cluster:
            errors += ["authentication key '/etc/corosync/authkey' already exists", "cluster config '/etc/pve/corosync.conf' already exists"]
        if self._guests_on(host.name):
            errors.append("this host already contains virtual guests")
        if host.in_cluster:
            errors.append("corosync is already running, is this node already in a cluster?!")
        if errors and "--force" not in a:
            listed = "".join(f"* {e}\n" for e in errors)
            return 255, "", f"detected the following error(s):\n{listed}Check if node may join a cluster failed!\n"
        target = next((h for h in self.hosts.values() if h.address == a[1]), None)
        if "--use_ssh" in a and (target is None or target.offline or host.root_pubkey not in target.authorized):
            return 255, "", "unable to copy ssh ID: exit code 1\n"
        if target is None or target.offline or not target.in_cluster:  # the API join (a password asked): not modelled further
            return 255, "", f"unable to connect to {a[1]}: No route to host\n"
        if c.quorum_lost:
            return 255, "", "cluster not ready - no quorum?\n"
        c.members.append(host.name)
        host.in_cluster = True
        return 0, "Request addition of this node\nJoin request OK, finishing setup locally\nsuccessfully added node '%s' to cluster.\n" % host.name, ""

    def _pvecm_qdevice_setup(self, host: HostState, a: list[str]) -> tuple[int, str, str]:
        """`pvecm qdevice setup <address> [--force]`, in its order: a cluster config; every member
        online ("All nodes must be online! Node <n> is offline, aborting."); no QDevice yet unless
        --force; an even member count unless --force ("Clusters with an odd node count are not
        officially supported!"); then only this node reaches the witness over SSH (ssh-copy-id, then
        ssh/scp with BatchMode), the witness's `corosync-qnetd-certutil -i` may fail silently and the
        copy of its CA certificate fails where corosync-qnetd is not installed. Source:
        proxmox/pve-cluster 9.0.7 src/PVE/CLI/pvecm.pm qdevice setup 115-292. Each member needs
        corosync-qdevice; where one lacks it the real failure comes later (its certutil or
        `systemctl start corosync-qdevice`); the stand-in refuses before the change instead."""
        c = self.cluster
        force = "--force" in a or "-force" in a
        if not host.in_cluster:
            return 2, "", NOT_IN_CLUSTER
        offline = sorted(m for m in c.members if self.hosts[m].offline)
        if offline:
            return 255, "", f"All nodes must be online! Node {offline[0]} is offline, aborting.\n"
        if c.qdevice and not force:
            return 255, "", "QDevice already configured!\n"
        if len(c.members) % 2 == 1 and not force:
            return 255, "", "Clusters with an odd node count are not officially supported!\n"
        address = a[2]
        witness = next((h for h in self.hosts.values() if h.address == address), None)
        if witness is None or witness.offline or host.root_pubkey not in witness.authorized:
            return 255, "", f"command 'ssh-copy-id -i /root/.ssh/id_rsa root@{address}' failed: exit code 1\n"
        if "corosync-qnetd" not in witness.packages:
            return 255, "", (f"command 'scp -o BatchMode=yes root@[{address}]:/etc/corosync/qnetd/nssdb/qnetd-cacert.crt "
                             "/etc/pve/qnetd-cacert.crt' failed: exit code 1\n")
        for m in c.members:
            if "corosync-qdevice" not in self.hosts[m].packages:
                return 255, "", f"corosync-qdevice is not installed on node '{m}'\n"
        c.qdevice = address
        return 0, "\nINFO: initializing qnetd server\n\nINFO: add QDevice to cluster configuration\n", ""

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
            return self._pveceph_install(host, a)
        if not host.ceph_installed:
            return 255, "", "binary not installed: /usr/bin/ceph-mon\n"
        if a[:1] == ["init"]:
            ceph.initialized = True
            ceph.network = a[a.index("--network") + 1] if "--network" in a else None
            return 0, "", ""
        if not ceph.initialized:  # pve-manager 9.1.2 PVE/Ceph/Tools.pm check_ceph_inited 213-226
            return 255, "", "pveceph configuration not initialized - missing '/etc/pve/ceph.conf', missing '/etc/pve/ceph'\n"
        if a[:2] == ["mon", "create"]:
            if host.name in ceph.mons:  # pve-manager 9.1.2 PVE/API2/Ceph/MON.pm 148-149 (the mon id is the node name)
                return 255, "", f"monitor '{host.name}' already exists\n"
            ceph.mons.append(host.name)
            return 0, f"creating new monitor keyring\nstarting service 'ceph-mon@{host.name}.service'\n", ""
        if a[:2] == ["osd", "create"]:
            dev = a[2]  # pve-manager 9.1.2 PVE/API2/Ceph/OSD.pm 372-376: a device the host has, not in use
            if dev not in host.disks:
                return 255, "", f"unable to get device info for '{dev}'\n"
            if host.disks[dev]:
                return 255, "", f"device '{dev}' is already in use\n"
            host.disks[dev] = True
            ceph.osds.append((len(ceph.osds), host.name, dev))
            return 0, f"create OSD on {dev} (bluestore)\n", ""
        if a[:2] == ["pool", "create"]:
            name = a[2]
            size = int(a[a.index("--size") + 1]) if "--size" in a else 3
            min_size = int(a[a.index("--min_size") + 1]) if "--min_size" in a else 2
            ceph.pools[name] = {"size": size, "min_size": min_size}
            return 0, "", ""
        return 255, "", f"unknown command 'pveceph {' '.join(a)}'\n"

    def _pveceph_install(self, host: HostState, a: list[str]) -> tuple[int, str, str]:
        """`pveceph install [--repository R]`: the default repository is `enterprise`; it writes
        ceph.sources for R, runs `apt-get update` (its failure ignored), then installs; from the
        enterprise repository without a subscription the install fails. Source: pve-manager
        9.1.2 PVE/CLI/pveceph.pm install 138-163 (default 'enterprise'), 211-243, 280-284."""
        repo = a[a.index("--repository") + 1] if "--repository" in a else "enterprise"
        if repo != "manual":
            suite = "enterprise.proxmox.com" if repo == "enterprise" else "download.proxmox.com"
            component = {"enterprise": "enterprise", "no-subscription": "no-subscription", "test": "test"}.get(repo, repo)
            host.files[f"{SOURCES}/ceph.sources"] = (f"Types: deb\nURIs: https://{suite}/debian/ceph-squid\nSuites: trixie\n"
                                                     f"Components: {component}\nSigned-By: /usr/share/keyrings/proxmox-archive-keyring.gpg\n").encode()
        if repo == "enterprise" and not host.subscribed:
            return 255, "update available package list\nstart installation\n", "apt failed during ceph installation (25600)\n"
        host.ceph_installed = True
        return 0, "update available package list\nstart installation\n\ninstalled Ceph 19.2 Squid successfully!\n", ""

    def _cmd_pvesubscription(self, host: HostState, a: list[str], _: str) -> tuple[int, str, str]:
        """`pvesubscription get` of a host without a key. Source: pve-manager 9.1.2
        PVE/API2/Subscription.pm 212-216 (status notfound, "There is no subscription key")."""
        if a[:1] != ["get"]:
            return 255, "", f"unknown command 'pvesubscription {' '.join(a)}'\n"
        if host.subscribed:
            return 0, "status: active\n", ""
        return 0, "message: There is no subscription key\nstatus: notfound\n", ""

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
