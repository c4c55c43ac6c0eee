"""Proxmox SDN on the sandbox's Proxmox VE, which fakepve 0.5.0 serves statelessly: zones and vnets
are kept as pending configuration until `PUT /cluster/sdn` applies them (a `reloadnetworkall`
task), then each vnet is a bridge on the zone's nodes (listed by GET /nodes/{node}/network with
type any_bridge, and usable by a VM NIC).

- Zone and vnet IDs match `^[a-z][a-z0-9]*[a-z0-9]$` and are at most 8 characters: `zone ID '<id>'
  contains illegal characters` / `can't be more length than 8 characters` (400 on the field).
  Source: proxmox/pve-network 1.2.3 src/PVE/Network/SDN/Zones/Plugin.pm 31-40, VnetPlugin.pm 30-39.
- A VXLAN zone needs exactly one of `peers` or `fabric` (400 on both: `must have exactly one of
  peers / fabric defined`). Source: Zones/VxlanPlugin.pm on_update_hook 155-166.
- A vnet in a VXLAN zone needs a `tag` (the VNI); the zone must exist. Source: VnetPlugin.pm
  on_update_hook (`missing vxlan tag`), SDN/Vnets.pm.
- An ID already defined is refused: `sdn zone object ID '<id>' already defined` (500). Source:
  pve-network src/PVE/API2/Network/SDN/Zones.pm create (`die "sdn zone object ID '$id' already defined\\n"`).
- The VNet bridge MTU is the zone's `mtu` (default 1450 = the uplink's 1500 - 50 of VXLAN).
  Source: Zones/VxlanPlugin.pm generate_sdn_config 120-124; pve-docs pvesdn.adoc 310-311.
Permissions are the schema's (SDN.Allocate on /sdn/zones, /sdn/zones/{zone}, /sdn), which fakepve checks.
"""

from __future__ import annotations

import re
from typing import Any

from fakepve.model import PveError

from tierzero.sandbox.pve_rules.access import ROOT

ID = re.compile(r"^[a-z][a-z0-9]*[a-z0-9]$", re.I)
DEFAULT_MTU = 1450


def _check_id(kind: str, field: str, value: str) -> None:
    if not ID.match(value):
        raise PveError(400, "Parameter verification failed.", {field: f"{kind} ID '{value}' contains illegal characters"})
    if len(value) > 8:
        raise PveError(400, "Parameter verification failed.", {field: f"{kind} ID '{value}' can't be more length than 8 characters"})


class SdnRules:
    """Mixin for FakePve (before it in the MRO). `sdn` is the configuration: {"zones", "vnets",
    "running": {"zones", "vnets"}} (what the last apply put in place)."""

    nodes: dict[str, Any]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[call-arg]
        self.sdn: dict[str, Any] = {"zones": {}, "vnets": {}, "running": {"zones": {}, "vnets": {}}}

    def _routes_sdn(self) -> list[tuple[str, str, Any]]:
        return [("GET", "/cluster/sdn/zones", self._sdn_zones), ("POST", "/cluster/sdn/zones", self._sdn_zone_create),
                ("GET", "/cluster/sdn/vnets", self._sdn_vnets), ("POST", "/cluster/sdn/vnets", self._sdn_vnet_create),
                ("PUT", "/cluster/sdn", self._sdn_apply)]

    async def _sdn_zones(self, v: dict[str, Any], user: str) -> Any:
        return [dict(z, zone=zid) for zid, z in sorted(self.sdn["zones"].items())]

    async def _sdn_vnets(self, v: dict[str, Any], user: str) -> Any:
        return [dict(n, vnet=vid) for vid, n in sorted(self.sdn["vnets"].items())]

    async def _sdn_zone_create(self, v: dict[str, Any], user: str) -> Any:
        zid = str(v["zone"])
        _check_id("zone", "zone", zid)
        if zid in self.sdn["zones"]:
            raise PveError(500, f"sdn zone object ID '{zid}' already defined")
        if v.get("type") == "vxlan" and bool(v.get("peers")) == bool(v.get("fabric")):
            message = "must have exactly one of peers / fabric defined"
            raise PveError(400, "Parameter verification failed.", {"peers": message, "fabric": message})
        self.sdn["zones"][zid] = {k: val for k, val in v.items() if k != "zone"}
        return None

    async def _sdn_vnet_create(self, v: dict[str, Any], user: str) -> Any:
        vid, zone = str(v["vnet"]), str(v.get("zone"))
        _check_id("vnet", "vnet", vid)
        if vid in self.sdn["vnets"]:
            raise PveError(500, f"sdn vnet object ID '{vid}' already defined")
        if zone not in self.sdn["zones"]:
            raise PveError(500, f"zone '{zone}' doesn't exist")
        if self.sdn["zones"][zone].get("type") == "vxlan" and not v.get("tag"):
            raise PveError(400, "Parameter verification failed.", {"tag": "missing vxlan tag"})
        self.sdn["vnets"][vid] = {k: val for k, val in v.items() if k != "vnet"}
        return None

    async def _sdn_apply(self, v: dict[str, Any], user: str) -> Any:
        node = next(iter(sorted(self.nodes)), "localhost")

        async def body() -> str:
            self.sdn["running"] = {"zones": {k: dict(z) for k, z in self.sdn["zones"].items()},
                                   "vnets": {k: dict(n) for k, n in self.sdn["vnets"].items()}}
            return "reloaded"

        return await self.task(node, "reloadnetworkall", "", user or ROOT, body)  # type: ignore[attr-defined]

    def sdn_bridges(self, node: str) -> dict[str, int]:
        """The vnets the last apply made bridges on `node`, with their MTU."""
        running = self.sdn.get("running") or {}
        out = {}
        for vid, vnet in (running.get("vnets") or {}).items():
            zone = (running.get("zones") or {}).get(vnet.get("zone"), {})
            nodes = [n for n in str(zone.get("nodes") or "").split(",") if n]
            if not nodes or node in nodes:
                out[vid] = int(zone.get("mtu") or DEFAULT_MTU)
        return out
