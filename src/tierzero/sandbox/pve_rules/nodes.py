"""The nodes of the sandbox's Proxmox VE as a fresh install has them, and what happens inside a VM
when it starts: rules fakepve 0.5.0 lacks, as a mixin in front of it.

- GET /nodes/{node}/status reports the host's own memory, GET /nodes/{node}/network its
  interfaces as the installer wrote them (one physical NIC, bridge `vmbr0`, not VLAN aware, no
  `vmbr1`). The installer pins NIC names by default, so the NIC is `nic0` (bridge-ports nic0), not
  a predictable name such as `eno1`. Source: proxmox/pve-installer 9.1.0 Proxmox/Install.pm
  1093-1177 (pinned names 1104-1140), proxinstall 1920 (network_pinning_enabled = 1),
  Proxmox/Sys/Net.pm 24 (DEFAULT_PIN_PREFIX 'nic') and get_ip_config 200-213 (pinned_id counts
  from 0); pve-manager 9.1.2 PVE/API2/Nodes.pm (status), PVE/API2/Network.pm (index, `type` filter).
- The appliance index is the one pve-manager installs (and `pveam update` refreshes): it offers
  `debian-12-standard_12.12-1`, not older builds; POST /nodes/{node}/aplinfo refuses a template the
  index lacks (400 `no such template`) and a storage without `vztmpl` (500). Source: pve-manager
  9.1.2 debian/postinst 170-173, aplinfo/aplinfo.dat, PVE/API2/Nodes.pm apl_download 1666-1735.
- A start runs the guest: `guests.before_start(vm)` may fail the `qmstart` task with PVE's own
  words (missing cloud-init snippet, no KVM, see `tierzero.sandbox.guests`), and the guest is told
  when its VM starts, stops or is destroyed. Source: qemu-server 9.1.0 src/PVE/API2/Qemu.pm
  vm_start inside fork_worker('qmstart') line 3582.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from fakepve import schema as pve_schema
from fakepve import shapes
from fakepve.model import PveError, TaskError
from fakepve.routing import die, param_error, split_list

# Entries of pve-manager 9.1.2 aplinfo/aplinfo.dat (the bundled appliance index).
APPLIANCES: tuple[dict[str, str], ...] = tuple(
    {"package": pkg, "version": ver, "type": "lxc", "os": os_, "section": "system", "architecture": "amd64",
     "template": f"{pkg}_{ver}_amd64.tar.zst", "location": f"http://download.proxmox.com/images/system/{pkg}_{ver}_amd64.tar.zst",
     "headline": headline, "maintainer": "Proxmox Support Team <support@proxmox.com>",
     "infopage": "https://pve.proxmox.com/wiki/Linux_Container#pct_supported_distributions", "description": headline}
    for pkg, ver, os_, headline in (
        ("debian-12-standard", "12.12-1", "debian-12", "Debian 12 Bookworm (standard)"),
        ("debian-13-standard", "13.1-2", "debian-13", "Debian 13 Trixie (standard)"),
        ("ubuntu-24.04-standard", "24.04-2", "ubuntu-24.04", "Ubuntu 24.04 Noble (standard)"),
    )
)


STOCK_NIC = "nic0"  # the first NIC's pinned name (module docstring)


class GuestHooks(Protocol):
    """What runs inside the VMs (the sandbox's `guests` stand-in)."""

    def before_start(self, vm: Any) -> None: ...  # raise TaskError(message) to fail the start task

    def started(self, vm: Any) -> None: ...

    def stopped(self, vm: Any) -> None: ...

    def destroyed(self, vm: Any) -> None: ...


def stock_interfaces(address: str | None = None, gateway: str | None = None, bridges: tuple[str, ...] = ("vmbr0",)) -> list[dict[str, Any]]:
    """/etc/network/interfaces of a fresh install as GET /nodes/{node}/network lists it."""
    out: list[dict[str, Any]] = [{"iface": STOCK_NIC, "type": "eth", "method": "manual", "families": ["inet"], "active": 1,
                                  "exists": 1, "priority": 3}]
    for i, bridge in enumerate(bridges):
        item: dict[str, Any] = {"iface": bridge, "type": "bridge", "method": "static" if i == 0 else "manual", "families": ["inet"],
                                "active": 1, "autostart": 1, "bridge_ports": STOCK_NIC if i == 0 else "", "bridge_stp": "off",
                                "bridge_fd": "0", "priority": 4 + i}
        if i == 0 and address:
            item.update(cidr=address, address=address.split("/")[0])
            if gateway:
                item["gateway"] = gateway
        out.append(item)
    return out


class NodeRules:
    """Mixin for FakePve (before it in the MRO)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[call-arg]
        self.version, self.release_version = "9.1.2", "9.1"
        self.guests: GuestHooks | None = None
        # node -> {"memory_total", "memory_available", "interfaces"}: the host's hardware (sandbox hosts).
        self.host_facts: Callable[[str], dict[str, Any] | None] | None = None
        self.appliances: list[dict[str, str]] = [dict(a) for a in APPLIANCES]

    # ------------------------------------------------------------ guests

    async def task(self, node: str, ttype: str, tid: Any, user: str, body: Callable[[], Any], vm: Any = None,
                   lock: bool = True, log: Any = ()) -> str:
        guests = self.guests
        if guests is None or vm is None or ttype not in ("qmstart", "qmstop", "qmshutdown", "qmreboot", "qmreset", "qmdestroy", "qmcreate"):
            return await super().task(node, ttype, tid, user, body, vm=vm, lock=lock, log=log)  # type: ignore[misc]

        async def guarded() -> Any:
            if ttype == "qmstart" and vm.status != "running" and not vm.template and not vm.lock:
                try:
                    guests.before_start(vm)
                except TaskError as err:
                    lines = getattr(err, "log", None)
                    if lines:  # printed before the task's end (fakepve adds the error line itself)
                        tasklog: list[dict[str, Any]] = self.tasklog  # type: ignore[attr-defined]
                        record = next(r for r in reversed(tasklog) if r["type"] == ttype and r["id"] == str(tid) and r["status"] == "running")
                        record["log"].extend(lines)
                    raise
            was = vm.status
            note = await body()
            if ttype == "qmdestroy":
                guests.destroyed(vm)
            elif ttype in ("qmreboot", "qmreset"):
                guests.stopped(vm)
                guests.started(vm)
            elif was != "running" and vm.status == "running":
                guests.started(vm)
            elif was == "running" and vm.status != "running":
                guests.stopped(vm)
            return note

        return await super().task(node, ttype, tid, user, guarded, vm=vm, lock=lock, log=log)  # type: ignore[misc]

    # ------------------------------------------------------------ node facts

    def _routes_sandbox_nodes(self) -> list[tuple[str, str, Any]]:
        node = "/nodes/{node}"
        return [("GET", node + "/status", self._node_status), ("GET", node + "/network", self._node_network),
                ("GET", node + "/aplinfo", self._aplinfo), ("POST", node + "/aplinfo", self._apl_download)]

    def _facts(self, node: str) -> dict[str, Any]:
        found = self.host_facts(node) if self.host_facts is not None else None
        return found or {}

    async def _node_status(self, v: dict[str, Any], user: str) -> Any:
        template = "/nodes/{node}/status"
        returns = pve_schema.load().paths[template]["GET"].get("returns") or {}
        data = shapes.build(template, returns, self._sample_context(v), "GET")  # type: ignore[attr-defined]
        facts = self._facts(v["node"])
        if "memory_total" in facts:
            total, available = int(facts["memory_total"]), int(facts["memory_available"])
            data["memory"] = {"total": total, "used": total - available, "free": available, "available": available}
        data["pveversion"] = f"pve-manager/{self.version}/9d436f37a0ac4172"
        return data

    async def _node_network(self, v: dict[str, Any], user: str) -> Any:
        interfaces = list(self._facts(v["node"]).get("interfaces") or stock_interfaces())
        sdn = getattr(self, "sdn_bridges", None)
        vnets = [{"iface": vid, "type": "vnet", "active": 1, "mtu": mtu} for vid, mtu in sorted(sdn(v["node"]).items())] if sdn else []
        kind = v.get("type")
        if kind in ("any_bridge", "include_sdn", "vnet"):  # SDN vnets count as bridges (any_local_bridge leaves them out)
            interfaces += vnets
        if kind == "any_bridge":
            return [dict(i) for i in interfaces if i["type"] in ("bridge", "OVSBridge", "vnet")]
        if kind == "include_sdn":
            return [dict(i) for i in interfaces]
        return [dict(i) for i in interfaces if kind in (None, i["type"])]

    async def _aplinfo(self, v: dict[str, Any], user: str) -> Any:
        return [dict(a) for a in self.appliances]

    async def _apl_download(self, v: dict[str, Any], user: str) -> Any:
        """The download itself always succeeds, unlike download-url and the hosts' curl, which
        reach only loopback: the appliance comes from download.proxmox.com, which the sandbox
        does not stand in for, and the template's bytes matter to nothing downstream (the LXC
        stand-in runs no root filesystem)."""
        template, sid, node = v["template"], v["storage"], v["node"]
        appliance = next((a for a in self.appliances if a["template"] == template), None)
        if appliance is None:
            raise param_error(template="no such template")
        store = self._check_enabled(sid, node)  # type: ignore[attr-defined]
        if "vztmpl" not in split_list(store.get("content")):
            raise die(f"storage '{sid}' does not support templates")

        async def body() -> str:
            size = 130 * 1024**2
            if size > store.get("avail", float("inf")):
                raise TaskError(f"unable to write to storage '{sid}': No space left on device")
            where = self.local_volumes(sid, node) if self.node_local(sid) else store.setdefault("volumes", {})  # type: ignore[attr-defined]
            where[f"vztmpl/{template}"] = {"content": "vztmpl", "format": "tzst", "size": size, "ctime": int(time.time())}
            if "avail" in store:
                store["avail"] -= size
            return f"download of '{appliance['location']}' finished"

        return await self.task(node, "download", template, user, body)  # type: ignore[attr-defined]


__all__ = ["APPLIANCES", "GuestHooks", "NodeRules", "PveError", "stock_interfaces"]
