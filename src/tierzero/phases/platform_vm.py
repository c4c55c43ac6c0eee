"""One Talos VM on Proxmox: VMID assignment, the cloud-init snippet with its machine config, and
create/adopt/start, looking up by VMID and by name so a re-run never makes a second VM."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

from tierzero.adapters.protocols import ProxmoxApi
from tierzero.adapters.proxmox import proxmox_client
from tierzero.engine.step import StepContext
from tierzero.errors import OperationError
from tierzero.phases.hosts import host_ssh
from tierzero.render.proxmox_hosts import vm_network_wanted
from tierzero.render.remote_files import write_file_script

if TYPE_CHECKING:
    from tierzero.spec.models import Cluster, Node


def image_name(talos_version: str, arch: str, schematic_id: str) -> str:
    """The file name on the storage: schematic, version and arch, so a changed image is a new file.
    `.qcow2`: download-url's `import` content takes only .ova/.qcow2/.raw/.vmdk names (so not the
    factory's default .raw.xz) and decompresses nothing. Source: proxmox/pve-storage 9.1.0
    src/PVE/API2/Storage/Status.pm 840-845, 894."""
    return f"talos-{schematic_id[:12]}-{talos_version}-nocloud-{arch}.qcow2"


def image_volid(storage: str, filename: str) -> str:
    return f"{storage}:import/{filename}"


@dataclass(frozen=True)
class VmInputs:
    """Everything a Talos VM depends on: what the VM step fingerprints and then acts on."""

    cluster: str
    arch: str
    talos_version: str
    node: Node
    mac: str  # the NIC's MAC, which the machine config selects its link by (`tierzero.render.talos_spec.node_mac`)
    image: str  # the disk image's volume, as the image step left it on the host (e.g. local:import/talos-….qcow2)
    vmid: int
    config_sha256: str  # the rendered machine config's digest (the config itself is secret)
    net: tuple[str, int | None, str]  # bridge, VLAN tag, VM disk storage
    image_storage: str  # holds the disk image and the cloud-init snippet
    gateway: str
    nameservers: tuple[str, ...]
    allow_software_emulation: bool
    host_kvm: bool | None  # /dev/kvm on the host as the preflight found it (None: not checked)
    inherit_mtu: bool = False  # the bridge is tierzero's VXLAN vnet (MTU 1450): the NIC takes the bridge's MTU

    @property
    def kvm(self) -> bool:
        return self.host_kvm if self.host_kvm is not None else not self.allow_software_emulation

    @property
    def storage(self) -> str:
        return self.net[2]


def vm_inputs(ctx: StepContext, cluster: Cluster, node: Node, vmid: int, image_volid_: str, config_sha256: str) -> VmInputs:
    from tierzero.render.talos_spec import node_mac

    px = ctx.spec.proxmox
    pre = ctx.outputs.get(f"hypervisors/preflight/{node.node}")
    host_kvm = bool(pre["kvm"]) if pre is not None and "kvm" in pre else None
    return VmInputs(cluster.name, cluster.arch, cluster.talos_version, node, node_mac(cluster, node), image_volid_, vmid, config_sha256,
                    (px.bridge, px.vlan, px.storage), px.image_storage, px.gateway, tuple(px.nameservers),
                    px.allow_software_emulation, host_kvm, vm_network_wanted(ctx.spec))


async def _snippet(ctx: StepContext, api: ProxmoxApi, vm: VmInputs, name: str, config: bytes) -> tuple[str, bool]:
    """Write the machine config as a NoCloud user-data snippet on the host (0600); unchanged files
    are left alone. Returns (cicustom volume, written)."""
    storage = vm.image_storage
    info = await api.call("get", f"storage/{storage}")
    base = str(info.get("path") or "/var/lib/vz")
    filename = f"tierzero-{name}-user.yaml"
    path = f"{base}/snippets/{filename}"
    ssh = host_ssh(ctx, vm.node.host)
    digest = hashlib.sha256(config).hexdigest()
    current = await ssh.run(["sha256sum", path], check=False)
    written = False
    if not current.ok or current.stdout.split()[0] != digest:
        await ssh.run(write_file_script(path, "0600"), input=config.decode())
        written = True
    return f"{storage}:snippets/{filename}", written


def _net0(vm: VmInputs) -> str:
    """The NIC at the node's MAC (the spec's or a stable derived one): the machine config selects
    its link by that MAC, so Proxmox must not pick one."""
    bridge, vlan, _ = vm.net
    # mtu=1: virtio offers the bridge's MTU to the guest (pve-docs qm.adoc, "mtu ... 1 ... the MTU of the bridge"),
    # so Talos' link gets the vnet's 1450 without a setting of its own.
    return f"virtio={vm.mac},bridge={bridge}" + (f",tag={vlan}" if vlan else "") + (",mtu=1" if vm.inherit_mtu else "")


def _ipconfig(vm: VmInputs) -> str:
    if vm.node.ip.dhcp:
        return "ip=dhcp"
    return f"ip={vm.node.ip},gw={vm.gateway}"


def desired_config(vm: VmInputs, image_volid_: str, cicustom: str) -> dict[str, Any]:
    node, kvm = vm.node, vm.kvm
    cfg: dict[str, Any] = {
        "name": node.name,
        "cores": node.cores,
        "sockets": 1,
        "memory": int(node.memory_gb * 1024),
        "cpu": "host" if kvm else "max",
        "kvm": 1 if kvm else 0,
        "ostype": "l26",
        "scsihw": "virtio-scsi-single",
        "scsi0": f"{vm.storage}:0,import-from={image_volid_},discard=on,iothread=1",
        "ide2": f"{vm.storage}:cloudinit",
        "net0": _net0(vm),
        "citype": "nocloud",
        "cicustom": f"user={cicustom}",
        "ipconfig0": _ipconfig(vm),
        "nameserver": " ".join(vm.nameservers),
        "agent": "enabled=1",
        "serial0": "socket",
        "boot": "order=scsi0",
        "onboot": 1,
        "tags": f"tierzero;{vm.cluster}",
    }
    if vm.arch == "arm64":
        cfg.update({"bios": "ovmf", "efidisk0": f"{vm.storage}:1,efitype=4m"})
    return cfg


async def ensure_vm(ctx: StepContext, vm: VmInputs, config: bytes) -> Mapping[str, Any]:
    """The node's VM, created from `vm.image` (the volume the image step downloaded) or adopted."""
    node, vmid = vm.node, vm.vmid
    host = node.host
    api = proxmox_client(ctx, host)
    name = node.name
    found = await api.find_guest(vmid=vmid)
    if found is not None and found.get("name") != name:
        raise OperationError(
            f"VMID {vmid} is taken by {found.get('type')} {found.get('name')!r} on {found.get('node')}, not {name!r}",
            hint=f"give {name} another `vmid` in the spec, or remove the other guest",
        )
    if found is None:
        by_name = await api.find_guest(name=name)
        if by_name is not None and by_name.get("type") == "qemu":
            ctx.log(f"adopting existing VM {by_name['vmid']} named {name}")
            found, vmid = by_name, int(by_name["vmid"])
    if found is not None and found.get("node") != host:
        raise OperationError(f"VM {name} ({vmid}) lives on {found.get('node')}, the spec puts it on {host}", hint="migrate it, or change `node` in the spec")
    cicustom, snippet_written = await _snippet(ctx, api, vm, name, config)
    created = False
    if found is None:
        await api.create_vm(host, vmid, **desired_config(vm, vm.image, cicustom))
        await api.resize_vm_disk(host, vmid, "scsi0", f"{node.disk_gb}G")
        created = True
    else:
        current = await api.vm_config(host, vmid)
        changes = {k: v for k, v in (("cores", node.cores), ("memory", int(node.memory_gb * 1024)), ("net0", _net0(vm))) if not _same(k, current.get(k), v)}
        if changes:
            ctx.log(f"updating {name}: {', '.join(sorted(changes))} (applies at the next reboot if running)", level="notice")
            await api.set_vm_config(host, vmid, **changes)
        if snippet_written:
            ctx.log(f"{name}: machine config changed; a running node takes it only through the Talos API (apply-config)", level="notice")
    started = False
    if await api.vm_status(host, vmid) != "running":
        await api.start_vm(host, vmid)
        started = True
    return {"vmid": vmid, "node": host, "name": name, "created": created, "started": started}


def _same(key: str, current: Any, wanted: Any) -> bool:
    if current is None:
        return False
    if key != "net0":
        return str(current) == str(wanted)

    def split(value: Any) -> tuple[str | None, set[str]]:
        mac, rest = None, set()
        for part in str(value).split(","):
            name, _, val = part.partition("=")
            if name == "virtio":
                mac = val.upper() or None
            else:
                rest.add(part)
        return mac, rest

    # PVE fills in a MAC when none is given and writes it upper-case: compare what the spec fixes.
    (have_mac, have), (want_mac, want) = split(current), split(wanted)
    return have == want and (want_mac is None or want_mac == have_mac)


async def remove_vm(ctx: StepContext, cluster: Cluster, node_name: str, vmid: int) -> Mapping[str, Any]:
    """Undo of ensure_vm: stop and delete the VM if it is still ours (same VMID and name)."""
    node = cluster.node(node_name)
    api = proxmox_client(ctx, node.host)
    found = await api.find_guest(vmid=vmid)
    if found is None or found.get("name") != node.name:
        return {"vmid": vmid, "deleted": False}
    host = str(found.get("node"))
    if await api.vm_status(host, vmid) == "running":
        await api.stop_vm(host, vmid)
    await api.delete_vm(host, vmid)
    return {"vmid": vmid, "deleted": True}
