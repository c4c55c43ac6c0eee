"""A Talos stand-in machine is what its image and its VM make it: the image's version, platform and
extensions, its NoCloud user-data and network-config, links named as its kernel arguments name
them, addresses only on links that exist, and the shared VIP only once etcd runs. Each test names
the rule of `tierzero.sandbox.talos` (and its modules) it shows, with its source there."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from tierzero.adapters.connections import Connections
from tierzero.adapters.talos import TalosNotImplemented, TalosClient, TalosUnavailable
from tierzero.render.talos import client as render_client
from tierzero.render.talos import node as render_node
from tierzero.render.talos import secrets as render_secrets
from tierzero.sandbox import talos
from tierzero.sandbox.context import SandboxContext, SandboxOptions
from tierzero.sandbox.talos.links import config_addressing, machine_links
from tierzero.sandbox.talos.tls import parse_machine_config
from tierzero.spec.models import Node

CP, CP2, VIP = "10.40.0.11", "10.40.0.12", "10.40.0.10"
MAC, MAC2 = "BC:24:11:40:00:11", "BC:24:11:40:00:12"
NOCLOUD = ["console=tty1", "console=ttyS0", "net.ifnames=0"]  # siderolabs/talos platform/nocloud KernelArgs
METAL = ["console=tty0"]  # platform/metal KernelArgs (amd64)


def image(version: str = "v1.13.9", platform: str = "nocloud", extensions: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"schematic": "x" * 64, "version": version, "platform": platform, "arch": "amd64", "format": "qcow2",
            "extensions": list(extensions), "kernel_args": NOCLOUD if platform == "nocloud" else METAL}


def proxmox_network(mac: str, address: str) -> list[dict[str, Any]]:
    """What Proxmox writes for ipconfig0 (qemu-server Cloudinit.pm nocloud_network): the MAC lower-cased."""
    return [{"type": "physical", "name": "eth0", "mac_address": mac.lower(),
             "subnets": [{"type": "static", "address": address, "netmask": "255.255.255.0", "gateway": "10.40.0.1"}]}]


@pytest.fixture(scope="module")
def bundle() -> render_secrets.SecretsBundle:
    return render_secrets.generate_bundle()


def config(bundle: Any, *, hostname: str = "cp1", address: str = f"{CP}/24", contract: str = "v1.13", interface: str = "eth0",
           mac: str | None = MAC, vip: str | None = None) -> bytes:
    common = render_node.ClusterInputs(name="lab", endpoint=f"https://{VIP}:6443", talos_version=contract, kubernetes_version="1.34.1",
                                       secrets=bundle)
    node = render_node.NodeInputs(hostname=hostname, role="controlplane", address=address, gateway="10.40.0.1", interface=interface,
                                  hardware_addr=mac, vip=vip)
    return render_node.render_node_config(common, node).encode()


class Net:
    """The Talos stand-in for a two-node spec with a VIP, and its machines."""

    def __init__(self, tmp: Path) -> None:
        nodes = [("controlplane", Node(name="cp1", node="pve1", ip=f"{CP}/24")), ("controlplane", Node(name="cp2", node="pve1", ip=f"{CP2}/24"))]
        cluster = SimpleNamespace(name="lab", nodes=lambda: nodes, vip=VIP)
        self.box = SandboxContext(SimpleNamespace(clusters=[cluster]), None, Connections(target="sandbox"), tmp,  # type: ignore[arg-type]
                                  options=SandboxOptions(talos_reboot_seconds=0.05))
        self.stop: Callable[[], None] = talos.STANDIN.start(self.box)
        self.machines: talos.TalosMachines = self.box[talos.MACHINES]

    def boot(self, key: str = "pve1/100", **kwargs: Any) -> Any:
        kwargs.setdefault("image", image())
        kwargs.setdefault("macs", [MAC])
        kwargs.setdefault("user_data", None)
        kwargs.setdefault("network_config", None)
        return self.machines.boot(key, disk=f"local-lvm:vm-{key}-disk-0", **kwargs)

    def answers(self, address: str) -> bool:
        return self.machines.network.holder(address) is not None

    async def version(self, address: str) -> Any:
        async with TalosClient.maintenance(address, connections=self.box.connections, call_timeout=3.0) as insecure:
            return await insecure.version(timeout=3.0)

    async def authenticated(self, address: str, bundle: Any) -> Any:
        return TalosClient.authenticated(address, render_client.talosconfig(bundle, "lab", [CP, CP2], [CP, CP2]), connections=self.box.connections)


@pytest.fixture
def net(tmp_path: Path) -> Iterator[Net]:
    made = Net(tmp_path)
    yield made
    made.stop()


async def test_a_machine_runs_the_version_platform_and_extensions_of_its_image(net: Net) -> None:
    """Not one version for all: each machine reports the image its VM booted (Version API, which
    Talos 1.13+ answers in maintenance mode); a 1.12 machine refuses Version there."""
    a = net.boot("pve1/100", image=image("v1.13.0", extensions=("siderolabs/qemu-guest-agent",)), network_config=proxmox_network(MAC, CP))
    net.boot("pve1/101", image=image("v1.12.11", platform="metal"), macs=[MAC2], network_config=proxmox_network(MAC2, CP2))
    seen = await net.version(CP)
    assert (seen.tag, seen.platform, seen.platform_mode) == ("v1.13.0", "nocloud", "cloud")
    assert a.image["extensions"] == ["siderolabs/qemu-guest-agent"]
    with pytest.raises(TalosNotImplemented, match="API is not implemented in maintenance mode"):
        await net.version(CP2)


async def test_nothing_answers_before_a_vm_boots_and_after_it_stops(net: Net) -> None:
    assert not net.answers(CP)
    with pytest.raises(TalosUnavailable):
        await net.version(CP)
    net.boot(network_config=proxmox_network(MAC, CP))
    assert (await net.version(CP)).tag == "v1.13.9"
    net.machines.power_off("pve1/100")
    assert not net.answers(CP)
    net.machines.remove("pve1/100")
    assert net.machines.machines == {}


def test_links_are_named_as_the_platform_kernel_arguments_make_them(net: Net) -> None:
    """nocloud puts net.ifnames=0 on the command line (eth0); metal does not: predictable ens18 for
    the Proxmox virtio NIC in PCI slot 18."""
    assert [link.name for link in net.boot("pve1/100", image=image(platform="nocloud")).links] == ["eth0"]
    assert [link.name for link in net.boot("pve1/101", image=image(platform="metal"), macs=[MAC2]).links] == ["ens18"]


async def test_nocloud_user_data_is_the_machine_config_unless_it_is_cloud_config(net: Net, bundle: Any) -> None:
    """talos nocloud.go Configuration: a `#cloud-config` user-data is no machine config (maintenance)."""
    net.boot("pve1/100", user_data=b"#cloud-config\nhostname: cp1\n", network_config=proxmox_network(MAC, CP))
    assert net.machines.machines["pve1/100"].maintenance
    net.boot("pve1/101", macs=[MAC2], user_data=config(bundle, hostname="cp2", address=f"{CP2}/24", mac=MAC2),
             network_config=proxmox_network(MAC2, CP2))
    async with await net.authenticated(CP2, bundle) as cp2:
        assert (await cp2.version()).hostname == "cp2"  # configured at boot: mutual TLS from the first call


async def test_an_address_on_a_link_that_does_not_exist_is_nowhere(net: Net, bundle: Any) -> None:
    """A metal machine's link is ens18: a config naming `eth0` (what tierzero wrote before) leaves
    the node unreachable at its address; the same config selecting the link by MAC reaches it."""
    by_name = net.boot("pve1/100", image=image(platform="metal"), user_data=None)
    by_name.configure(parse_machine_config(config(bundle, mac=None)))  # as applied (metal reads no NoCloud drive)
    assert by_name.addressing().unapplied == ["LinkConfig eth0: no link or alias named 'eth0'"]
    assert not net.answers(CP)
    net.machines.remove("pve1/100")
    by_mac = net.boot("pve1/101", image=image(platform="metal"), user_data=None)
    by_mac.configure(parse_machine_config(config(bundle, mac=MAC)))
    assert by_mac.addressing().addresses == {"ens18": [f"{CP}/24"]} and net.answers(CP)


def test_v1alpha1_device_selectors_match_the_lower_case_mac_only(net: Net, bundle: Any) -> None:
    """talos device_config.go selectDevices: a case-sensitive glob against net.HardwareAddr.String()."""
    links = machine_links(METAL, [MAC])
    upper = [{"version": "v1alpha1", "machine": {"network": {"interfaces": [{"deviceSelector": {"hardwareAddr": MAC}, "addresses": [f"{CP}/24"]}]}}}]
    lower = [{"version": "v1alpha1", "machine": {"network": {"interfaces": [{"deviceSelector": {"hardwareAddr": MAC.lower()}, "addresses": [f"{CP}/24"]}]}}}]
    assert config_addressing(links, upper).addresses == {} and config_addressing(links, lower).addresses == {"ens18": [f"{CP}/24"]}
    v111 = [d for d in yaml.safe_load_all(config(bundle, contract="v1.11")) if d]
    assert config_addressing(links, v111).addresses == {"ens18": [f"{CP}/24"]}  # what tierzero renders for contract v1.11


async def test_the_vip_comes_up_only_after_bootstrap(net: Net, bundle: Any) -> None:
    """talos operator/vip.go waitForPreconditions: etcd must run before the election."""
    net.boot("pve1/100", user_data=config(bundle, vip=VIP), network_config=proxmox_network(MAC, CP))
    assert net.answers(CP) and not net.answers(VIP)
    async with await net.authenticated(CP, bundle) as cp:
        assert await cp.bootstrap() is True
    assert net.machines.network.holder(VIP) is net.machines.machines["pve1/100"]
    async with await net.authenticated(VIP, bundle) as through_vip:
        assert (await through_vip.version()).hostname == "cp1"


def test_the_nocloud_drive_is_what_proxmox_generates_from_the_vm_config() -> None:
    """qemu-server 9.1.0 Cloudinit.pm: the drive exists only with a cloud-init volume; user-data is
    the cicustom file or Proxmox's own #cloud-config; network-config v1 from ipconfigN with the
    NIC's MAC lower-cased (nocloud_network)."""
    from tierzero.sandbox.guests import Guests

    files = {"/var/lib/vz/snippets/u.yaml": b"version: v1alpha1\n"}
    hosts = SimpleNamespace(hosts={"pve1": SimpleNamespace(files=files, bridges=["vmbr0"], kvm=True)})
    pve = SimpleNamespace(storages={"local": {"path": "/var/lib/vz"}})
    guests = Guests(pve, hosts, None)
    vm = SimpleNamespace(node="pve1", name="cp-1", config={"net0": f"virtio={MAC},bridge=vmbr0", "ipconfig0": f"ip={CP}/24,gw=10.40.0.1",
                                                          "nameserver": "1.1.1.1", "scsi0": "local-lvm:vm-100-disk-0"})
    assert guests._cloudinit(vm) is None  # no cloud-init drive: nothing to read
    vm.config["ide2"] = "local-lvm:vm-100-cloudinit,media=cdrom"
    user, network = guests._cloudinit(vm)
    assert user.startswith(b"#cloud-config\nhostname: cp-1\n")
    assert network == [{"type": "physical", "name": "eth0", "mac_address": MAC.lower(),
                        "subnets": [{"type": "static", "address": CP, "netmask": "255.255.255.0", "gateway": "10.40.0.1"}]},
                       {"type": "nameserver", "address": ["1.1.1.1"]}]
    vm.config["cicustom"] = "user=local:snippets/u.yaml"
    assert guests._cloudinit(vm)[0] == b"version: v1alpha1\n"


def test_a_cicustom_network_file_replaces_the_generated_network_config_and_the_sum_is_bounded() -> None:
    """qemu-server 9.1.0 Cloudinit.pm generate_nocloud 586-602: the cicustom network file is used
    as given (nocloud_network only without one); all files together stay within 3 MiB."""
    from fakepve import TaskError

    from tierzero.sandbox.guests import Guests

    v1 = b"version: 1\nconfig:\n  - type: physical\n    name: eth0\n    mac_address: 'bc:24:11:40:00:11'\n" \
         b"    subnets:\n      - type: static\n        address: 10.40.0.99/24\n"
    v2 = b"network:\n  version: 2\n  ethernets:\n    lan:\n      match: {macaddress: 'BC:24:11:40:00:11'}\n      addresses: [10.40.0.98/24]\n"
    files = {"/var/lib/vz/snippets/n1.yaml": v1, "/var/lib/vz/snippets/n2.yaml": v2, "/var/lib/vz/snippets/big.yaml": b"#" * (3 * 1024 * 1024)}
    hosts = SimpleNamespace(hosts={"pve1": SimpleNamespace(files=files, bridges=["vmbr0"], kvm=True)})
    guests = Guests(SimpleNamespace(storages={"local": {"path": "/var/lib/vz"}}), hosts, None)
    vm = SimpleNamespace(node="pve1", name="cp-1", config={"net0": f"virtio={MAC},bridge=vmbr0", "ipconfig0": f"ip={CP}/24",
                                                          "ide2": "local-lvm:vm-100-cloudinit,media=cdrom", "cicustom": "network=local:snippets/n1.yaml"})
    _user, network = guests._cloudinit(vm)
    assert network == [{"type": "physical", "name": "eth0", "mac_address": "bc:24:11:40:00:11",
                        "subnets": [{"type": "static", "address": "10.40.0.99/24"}]}]
    vm.config["cicustom"] = "network=local:snippets/n2.yaml"
    _user, network = guests._cloudinit(vm)
    assert network == [{"type": "physical", "name": "lan", "mac_address": MAC.lower(), "subnets": [{"type": "static", "address": "10.40.0.98/24"}]}]
    vm.config["cicustom"] = "user=local:snippets/big.yaml"
    with pytest.raises(TaskError, match=r"^Cloud-Init sum of snippets too big \(> 3 MiB\)$"):
        guests._cloudinit(vm)
