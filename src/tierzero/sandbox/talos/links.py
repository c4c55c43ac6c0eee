"""Which links a stand-in Talos machine has and which addresses land on them (pure functions).

Rules, each with its source (T = siderolabs/talos at v1.12.11, research in /work/research/talos.md):
- Link names: with `net.ifnames=0` on the kernel command line (nocloud, openstack, oracle and the
  other cloud platforms put it there) the NICs are `eth0`, `eth1`, ... in device order; without it
  (metal) they get predictable names; a Proxmox virtio NIC `netN` sits in PCI slot 18+N of the
  default i440fx machine, so it is `ens18`, `ens19`, ... Sources: T platform/<name>/<name>.go
  KernelArgs; Talos docs v1.13 networking/predictable-interface-names; proxmox/qemu-server
  src/PVE/QemuServer/PCI.pm get_pci_addr_map (net0 at bus 0, addr 18); siderolabs/
  terraform-provider-talos issue 267 (`ens18` on Proxmox).
- v1alpha1 `machine.network.interfaces[]` selects a link by `interface` (name) or `deviceSelector`
  (every set field must match, as a case-sensitive glob; `hardwareAddr` against the lower-case
  MAC). Source: T internal/app/machined/pkg/controllers/network/device_config.go selectDevices.
- Multi-document config (contract >= 1.12): `LinkAliasConfig` names the one link its CEL selector
  matches (none or several: not applied); `LinkConfig`, `Layer2VIPConfig` and `DHCPv4Config` name a
  link or an alias. Source: T pkg/machinery/config/types/network/link_alias.go, layer2_vip.go;
  Talos docs v1.12 networking/configuration/aliases.
- An address for a link that does not exist is not applied anywhere. Source: T
  device_config.go (`no matching network device`), address_config.go (addresses are per link).
- NoCloud network-config v1 (what Proxmox writes from ipconfigN) picks the link by `mac_address`,
  case-insensitive, then by `name`. Source: T platform/nocloud/metadata.go applyNetworkConfigV1;
  proxmox/qemu-server src/PVE/QemuServer/Cloudinit.pm nocloud_network.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Link:
    name: str
    mac: str  # lower-case colon hex, as Talos prints it
    driver: str = "virtio_net"
    bus_path: str = ""
    physical: bool = True


def machine_links(kernel_args: list[str] | tuple[str, ...], macs: list[str]) -> list[Link]:
    """The links of a machine with these NICs (in device order) booted with these kernel args."""
    classic = "net.ifnames=0" in kernel_args
    return [Link(f"eth{i}" if classic else f"ens{18 + i}", mac.lower(), bus_path=f"pci-0000:00:{18 + i:02x}.0")
            for i, mac in enumerate(macs)]


def _glob(pattern: str, value: str) -> bool:
    """github.com/ryanuber/go-glob: `*` is the only wildcard, case-sensitive."""
    return re.fullmatch(".*".join(re.escape(part) for part in str(pattern).split("*")), value) is not None


def _selector_matches(selector: dict[str, Any], link: Link) -> bool:
    fields = {"hardwareAddr": link.mac, "permanentAddr": link.mac, "driver": link.driver, "busPath": link.bus_path}
    for key, value in selector.items():
        if key == "physical":
            if bool(value) != link.physical:
                return False
        elif key in fields:
            if not _glob(str(value), fields[key]):
                return False
        else:
            return False  # pciID and others: not modelled, so never a match
    return bool(selector)


_CEL_TERM = re.compile(r'^\s*(?:mac\(link\.(?P<mac>hardware_addr|permanent_addr)\)|link\.(?P<field>driver))\s*==\s*"(?P<value>[^"]*)"\s*$')


def _cel_matches(expression: str, link: Link) -> bool | None:
    """The subset of Talos' LinkLocator CEL the stand-in understands (equalities joined by &&);
    None for anything else (the alias is then not applied)."""
    for term in str(expression).split("&&"):
        found = _CEL_TERM.match(term)
        if found is None:
            return None
        have = link.mac if found["mac"] else link.driver
        if have != found["value"]:
            return False
    return True


@dataclass
class Addressing:
    """What a machine's configuration does to its links."""

    addresses: dict[str, list[str]] = field(default_factory=dict)  # link name -> CIDRs
    vips: list[tuple[str, str]] = field(default_factory=list)  # (VIP, link name)
    dhcp: list[str] = field(default_factory=list)  # link names
    unapplied: list[str] = field(default_factory=list)  # what named no existing link, for tests and logs

    def ips(self) -> set[str]:
        return {str(ipaddress.ip_interface(c).ip) for cidrs in self.addresses.values() for c in cidrs}


def platform_addressing(links: list[Link], network_config: list[dict[str, Any]] | None) -> Addressing:
    """NoCloud network-config v1 entries (type physical, mac_address, subnets) on these links."""
    out = Addressing()
    for entry in network_config or []:
        if entry.get("type") != "physical":
            continue
        mac = str(entry.get("mac_address") or "").lower()
        link = next((each for each in links if mac and each.mac == mac), None) or next((each for each in links if each.name == entry.get("name")), None)
        for subnet in entry.get("subnets") or []:
            kind = subnet.get("type")
            if kind in ("dhcp", "dhcp4"):
                if link is not None:
                    out.dhcp.append(link.name)
                continue
            if kind not in ("static", "static6") or not subnet.get("address"):
                continue
            cidr = str(subnet["address"])
            if "/" not in cidr and subnet.get("netmask"):
                cidr = str(ipaddress.ip_interface(f"{cidr}/{subnet['netmask']}"))
            if link is None:
                out.unapplied.append(f"{cidr}: no link with MAC {mac or '?'}")
            else:
                out.addresses.setdefault(link.name, []).append(cidr)
    return out


def config_addressing(links: list[Link], docs: list[dict[str, Any]]) -> Addressing:
    """The machine config's addresses, VIPs and DHCP links, on the links that exist."""
    out = Addressing()
    by_name = {each.name: each for each in links}
    v1 = next((d for d in docs if d.get("version") == "v1alpha1"), {}) or {}
    for item in ((v1.get("machine") or {}).get("network") or {}).get("interfaces") or []:
        if item.get("deviceSelector"):
            chosen = [each for each in links if _selector_matches(item["deviceSelector"], each)]
            label = f"deviceSelector {item['deviceSelector']}"
        else:
            chosen = [by_name[item["interface"]]] if item.get("interface") in by_name else []
            label = f"interface {item.get('interface')!r}"
        if not chosen:
            out.unapplied.append(f"{label}: no such link")
            continue
        for link in chosen:
            out.addresses.setdefault(link.name, []).extend(str(a) for a in item.get("addresses") or [])
            if item.get("dhcp"):
                out.dhcp.append(link.name)
            if (item.get("vip") or {}).get("ip"):
                out.vips.append((str(item["vip"]["ip"]), link.name))
    aliases: dict[str, str] = {}
    for doc in docs:
        if doc.get("kind") == "LinkAliasConfig":
            matches = [each for each in links if _cel_matches(str((doc.get("selector") or {}).get("match") or ""), each)]
            if len(matches) == 1:
                aliases[str(doc.get("name"))] = matches[0].name
            else:
                out.unapplied.append(f"LinkAliasConfig {doc.get('name')}: its selector matches {len(matches)} links")

    def resolve(name: Any) -> str | None:
        name = str(name)
        return name if name in by_name else aliases.get(name)

    for doc in docs:
        kind = doc.get("kind")
        if kind not in ("LinkConfig", "Layer2VIPConfig", "DHCPv4Config"):
            continue
        target = doc.get("link") if kind == "Layer2VIPConfig" else doc.get("name")
        named = resolve(target)
        if named is None:
            out.unapplied.append(f"{kind} {doc.get('name')}: no link or alias named {target!r}")
        elif kind == "LinkConfig":
            out.addresses.setdefault(named, []).extend(str(a.get("address")) for a in doc.get("addresses") or [] if a.get("address"))
        elif kind == "Layer2VIPConfig":
            out.vips.append((str(doc.get("name")), named))
        else:
            out.dhcp.append(named)
    return out
