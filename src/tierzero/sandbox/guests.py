"""What runs inside the sandbox's Proxmox VMs (`STANDIN`, "guests"): the glue between fakepve (the
VM), the stand-in hosts (their files, /dev/kvm and bridges), the Image Factory stand-in (what a
host downloads) and the Talos stand-in (the machine a Talos image boots into).

Rules at VM start, in the order `qmstart` meets them (proxmox/qemu-server 9.1.0 vm_start):
- The cloud-init drive is generated first: each `cicustom` file must be a `snippets` volume
  (`<volid> is not in the snippets directory`) that exists on the node (`can't find file
  '<volid>'`). Source: qemu-server 9.1.0 src/PVE/QemuServer/Cloudinit.pm
  read_cloudinit_snippets_file 650-659; proxmox/pve-storage 9.1.0 src/PVE/Storage.pm
  abs_filesystem_path 769-788. Proxmox does not check the storage's `snippets` content type here.
  The files together (user, network, meta, vendor) must stay within 3 MiB ("Cloud-Init sum of
  snippets too big (> 3 MiB)"). Source: Cloudinit.pm generate_nocloud 586-602.
- `kvm` (default 1) needs /dev/kvm on the host: `KVM virtualisation configured, but not available.
  Either disable in VM configuration or enable in BIOS.` Source: qemu-server 9.1.0
  src/PVE/QemuServer.pm config_to_command 3189-3191.
- Then QEMU runs; a NIC's bridge missing on the node kills it (`Guests.before_start`).
Then the boot disk decides what runs: a Talos image (as the Image Factory stand-in described it
and the host downloaded it) boots a Talos machine; the NoCloud drive carries the `cicustom` user
file (or Proxmox's own `#cloud-config`) and the `cicustom` network file, or else a network-config
v1 built from `ipconfigN` with each NIC's lower-cased MAC. Source: qemu-server 9.1.0
src/PVE/QemuServer/Cloudinit.pm cloudinit_userdata, nocloud_network, generate_nocloud 586-591.

The hosts reach the network through `fetch_url`: only the sandbox's own loopback servers answer
(there is no internet here), so a URL of the real factory fails as an offline host's wget would.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

import yaml
from fakepve import TaskError

from tierzero.sandbox import fakepve, pve_hosts, talos
from tierzero.sandbox.context import SandboxContext, StandIn, Stop
from tierzero.sandbox.pve_rules.storage import CURRENT_NODE, HttpStatus

KVM_MISSING = "KVM virtualisation configured, but not available. Either disable in VM configuration or enable in BIOS."
DRIVE = re.compile(r"^(ide[0-3]|sata[0-5]|scsi\d+|virtio\d+|efidisk0|tpmstate0)$")


QEMU_FAILED = "start failed: QEMU exited with code 1"


class StartFailed(TaskError):
    """A start task's failure with the lines QEMU printed before it (they go to the task log)."""

    def __init__(self, message: str, *, log: list[str]) -> None:
        super().__init__(message)
        self.log = log


class Unresolvable(OSError):
    """The host's resolver knows no such name (the sandbox has no internet)."""

    def __init__(self, host: str) -> None:
        super().__init__(f"unable to resolve host address '{host}'")
        self.host = host


def fetch_url(url: str, timeout: float = 10.0) -> bytes:
    """GET a URL the way a sandbox host can: loopback only."""
    host = urlsplit(url).hostname or ""
    if host not in ("127.0.0.1", "localhost"):
        raise Unresolvable(host)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:  # noqa: S310 - loopback stand-ins only
            return bytes(answer.read())
    except urllib.error.HTTPError as exc:
        raise HttpStatus(exc.code, str(exc.reason), exc.read().decode(errors="replace").strip()) from None
    except urllib.error.URLError as exc:
        raise OSError(str(exc.reason)) from None


def _props(value: Any) -> tuple[str, dict[str, str]]:
    first, out = "", {}
    for i, part in enumerate(str(value or "").split(",")):
        key, sep, val = part.partition("=")
        if sep:
            out[key] = val
        elif i == 0:
            first = part
    return first, out


def nics(config: dict[str, Any]) -> list[tuple[int, str, dict[str, str]]]:
    """(N, MAC, options) of each netN, in device order."""
    out = []
    for key in sorted((k for k in config if re.fullmatch(r"net\d+", k)), key=lambda k: int(k[3:])):
        _first, opts = _props(config[key])
        mac = next((v for k, v in opts.items() if k in ("virtio", "e1000", "vmxnet3", "rtl8139", "macaddr")), "")
        out.append((int(key[3:]), mac, opts))
    return out


def nocloud_network(config: dict[str, Any]) -> list[dict[str, Any]]:
    """The network-config v1 Proxmox writes for a nocloud drive, as a parsed list."""
    entries: list[dict[str, Any]] = []
    for n, mac, _opts in nics(config):
        ipconfig = config.get(f"ipconfig{n}")
        if ipconfig is None:
            continue
        _first, ip = _props(ipconfig)
        subnets: list[dict[str, str]] = []
        if ip.get("ip") == "dhcp":
            subnets.append({"type": "dhcp4"})
        elif ip.get("ip"):
            iface = ipaddress.ip_interface(ip["ip"])
            subnet = {"type": "static", "address": str(iface.ip), "netmask": str(iface.netmask)}
            if ip.get("gw"):
                subnet["gateway"] = ip["gw"]
            subnets.append(subnet)
        entries.append({"type": "physical", "name": f"eth{n}", "mac_address": mac.lower(), "subnets": subnets})
    if config.get("nameserver"):
        entries.append({"type": "nameserver", "address": str(config["nameserver"]).split()})
    return entries


def custom_network(data: bytes) -> list[dict[str, Any]]:
    """A `cicustom` network file as the network-config v1 entries the Talos stand-in reads: v1
    (`config:`, with or without a top-level `network:`) as is; v2 `ethernets` matched by
    `macaddress` turned into physical entries (addresses, dhcp4). Anything else: no entries."""
    try:
        doc = yaml.safe_load(data)
    except yaml.YAMLError:
        return []
    if isinstance(doc, dict) and isinstance(doc.get("network"), dict):
        doc = doc["network"]
    if not isinstance(doc, dict):
        return []
    if doc.get("version") == 1:
        return [dict(e) for e in doc.get("config") or [] if isinstance(e, dict)]
    out: list[dict[str, Any]] = []
    for name, eth in (doc.get("ethernets") or {}).items() if doc.get("version") == 2 else ():
        if not isinstance(eth, dict):
            continue
        subnets: list[dict[str, Any]] = [{"type": "static", "address": str(a)} for a in eth.get("addresses") or []]
        if eth.get("dhcp4"):
            subnets.append({"type": "dhcp"})
        mac = str((eth.get("match") or {}).get("macaddress") or "").lower()
        out.append({"type": "physical", "name": str(name), "mac_address": mac, "subnets": subnets})
    return out


class Guests:
    """fakepve's GuestHooks for the sandbox."""

    def __init__(self, pve: Any, hosts: Any, machines: Any) -> None:
        self.pve, self.hosts, self.machines = pve, hosts, machines

    @staticmethod
    def key(vm: Any) -> str:
        return f"{vm.node}/{vm.vmid}"

    def _snippet(self, node: str, volid: str) -> bytes:
        sid, _, name = volid.partition(":")
        if not name.startswith("snippets/"):
            raise TaskError(f"{volid} is not in the snippets directory")
        store = self.pve.storages.get(sid)
        if store is None:
            raise TaskError(f"storage '{sid}' does not exist")
        path = f"{store.get('path') or '/var/lib/vz'}/{name}"
        host = self.hosts.hosts.get(node) if self.hosts is not None else None
        data = host.files.get(path) if host is not None else None
        if data is None:
            raise TaskError(f"can't find file '{volid}'")
        return bytes(data)

    def _cloudinit(self, vm: Any) -> tuple[bytes | None, list[dict[str, Any]] | None] | None:
        """(user-data, network-config) of the VM's NoCloud drive, or None without one."""
        config = vm.config
        if not any(DRIVE.match(k) and "-cloudinit" in str(v) for k, v in config.items()):
            return None
        _first, custom = _props("x," + str(config.get("cicustom") or ""))
        files = {kind: self._snippet(vm.node, custom[kind]) for kind in ("user", "network", "meta", "vendor") if custom.get(kind)}
        user = files.get("user") or f"#cloud-config\nhostname: {vm.name}\nmanage_etc_hosts: true\n".encode()
        network = custom_network(files["network"]) if "network" in files else nocloud_network(config)
        network_size = len(files["network"]) if "network" in files else len(yaml.safe_dump(network))
        meta_size = len(files.get("meta") or b"") if "meta" in files else len("instance-id: ") + 40 + 1  # sha1 hex
        if len(user) + network_size + meta_size + len(files.get("vendor") or b"") > 3 * 1024 * 1024:
            raise TaskError("Cloud-Init sum of snippets too big (> 3 MiB)")
        return user, network

    def before_start(self, vm: Any) -> None:
        """What vm_start checks, in its order: the cloud-init drive, KVM (config_to_command), then
        QEMU runs and its network script plugs each tap into its bridge. A missing bridge kills
        QEMU: the task ends "start failed: QEMU exited with code 1", the bridge named only in the
        task log. Source: qemu-server 9.1.0 src/PVE/QemuServer.pm config_to_command 3189-3191,
        vm_start_nolock 5767 ("QEMU exited with code") and 5809 ("start failed: "); pve-common
        9.0.15 src/PVE/Network.pm tap_plug 131 ("bridge '<b>' does not exist")."""
        self._cloudinit(vm)
        host = self.hosts.hosts.get(vm.node) if self.hosts is not None else None
        if host is None:
            return
        if str(vm.config.get("kvm", "1")) != "0" and not host.kvm:
            raise TaskError(KVM_MISSING)
        for _n, _mac, opts in nics(vm.config):
            if opts.get("bridge") and opts["bridge"] not in host.bridges and opts["bridge"] not in self.pve.sdn_bridges(vm.node):
                raise StartFailed(QEMU_FAILED, log=[f"bridge '{opts['bridge']}' does not exist"])

    def _boot_volume(self, vm: Any) -> tuple[str, dict[str, Any]] | None:
        config = vm.config
        order = str(config.get("boot") or "").removeprefix("order=")
        devices = [d for d in order.split(";") if DRIVE.match(d)] or sorted(k for k in config if DRIVE.match(k))
        for device in devices:
            volume, _opts = _props(config.get(device))
            sid, _, name = volume.partition(":")
            vol = self.pve._volumes(sid).get(name) if sid in self.pve.storages else None  # noqa: SLF001
            if vol and vol.get("image"):
                return volume, dict(vol["image"])
        return None

    def started(self, vm: Any) -> None:
        if self.machines is None:
            return
        found = self._boot_volume(vm)
        if found is None:
            return  # not a Talos disk: something else runs there, nothing the sandbox answers for
        disk, image = found
        drive = self._cloudinit(vm) if image.get("platform") in ("nocloud",) else None
        user_data, network = drive if drive is not None else (None, None)
        self.machines.boot(self.key(vm), disk=disk, image=image, macs=[mac for _, mac, _ in nics(vm.config)],
                           user_data=user_data, network_config=network,
                           hostname=vm.name if drive is not None and not str(vm.config.get("cicustom") or "").count("user=") else None)

    def stopped(self, vm: Any) -> None:
        if self.machines is not None:
            self.machines.power_off(self.key(vm))

    def destroyed(self, vm: Any) -> None:
        if self.machines is not None:
            self.machines.remove(self.key(vm))

    def reconcile(self) -> None:
        """Square the Talos machines with the VMs fakepve holds (a kill -9 can land between the
        two documents being saved)."""
        if self.machines is None:
            return
        vms = {self.key(vm): vm for vm in self.pve.vms}
        for key in list(self.machines.machines):
            if key not in vms:
                self.machines.remove(key)
        for key, vm in vms.items():
            if vm.status == "running" and not self.machines.running(key):
                token = CURRENT_NODE.set(vm.node)  # the node whose local storages the VM sees
                try:
                    self.started(vm)
                except TaskError:
                    pass  # its snippet is gone: it would not start again either
                finally:
                    CURRENT_NODE.reset(token)
            elif vm.status != "running" and self.machines.running(key):
                self.machines.power_off(key)


def link(server: Any, hosts: Any = None, machines: Any = None) -> Guests:
    """Wire a started fakepve (`FakePveServer`) to the stand-in hosts (their memory, bridges, files,
    /dev/kvm, and network) and the Talos machines; returns the hooks, with the running VMs squared."""
    guests = Guests(server.pve, hosts, machines)
    server.pve.fetch_url = fetch_url
    if hosts is not None:
        hosts.fetch_url = fetch_url
        hosts.pve = server.pve
        server.pve.host_facts = hosts.facts
    server.pve.guests = guests

    async def reconcile() -> None:
        guests.reconcile()

    server.call(reconcile())
    return guests


def _start(box: SandboxContext) -> Stop:
    server = box.get(fakepve.SERVER)
    if server is not None:
        link(server, box.get(pve_hosts.HOSTS), box.get(talos.MACHINES))
    return lambda: None


STANDIN = StandIn("guests", _start)
