"""What the stand-in hosts do for their guests and the outside: `pct` (exec into a container, `set`
its config as root), `curl` (the host's own network), and the hardware facts fakepve reports.
Mixed into `tierzero.sandbox.pve_hosts.PveHosts`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from tierzero.sandbox.pve_hosts.commands import HostState


class GuestCommands:
    hosts: dict[str, HostState]
    pve: Any
    pct_handler: Any
    fetch_url: Callable[[str], bytes] | None

    def _cmd_curl(self, host: HostState, a: list[str], _: str) -> tuple[int, str, str]:
        """The host's own network: what `fetch_url` serves (the sandbox's internet), else the name
        does not resolve, as on a host with no internet (curl(1) exit 6). Repository keys the hosts
        reach are served by `cloud_image.CloudImageCommands._cmd_curl`."""
        url = next((x for x in a if x.startswith(("http://", "https://"))), "")
        if self.fetch_url is None:
            return 6, "", f"curl: (6) Could not resolve host: {url.split('/')[2] if url.count('/') >= 2 else url}\n"
        try:
            body = self.fetch_url(url)
        except Exception as exc:  # noqa: BLE001 - curl reports whatever went wrong
            if getattr(exc, "host", None):  # curl's exit code 6: the name does not resolve
                return 6, "", f"curl: (6) Could not resolve host: {exc.host}\n"  # type: ignore[attr-defined]
            return 22, "", f"curl: (22) {exc}\n"
        return 0, "" if "-o" in a else body.decode(errors="replace"), ""

    def _cmd_pct(self, host: HostState, a: list[str], stdin: str) -> tuple[int, str, str]:
        if a[:1] == ["set"] and len(a) >= 2:
            return self._pct_set(host, a[1], a[2:])
        if a[:1] == ["exec"] and "--" in a:
            vmid = int(a[1])
            rest = a[a.index("--") + 1:]
            script = rest[2] if rest[:2] == ["sh", "-c"] and len(rest) > 2 else " ".join(rest)
            return self.pct_handler(host.name, vmid, script, stdin)
        return 0, "", ""

    def _pct_set(self, host: HostState, vmid: str, a: list[str]) -> tuple[int, str, str]:
        """`pct set VMID --key value ...` as root: the container's config, no permission check
        (root on the host); a running container takes most keys at its next start (pending).
        Source: proxmox/pve-container 6.0.18 src/PVE/CLI/pct.pm (set -> API2::LXC::Config update_vm)."""
        pve = self.pve
        ct = next((c for c in getattr(pve, "cts", []) if str(c.vmid) == vmid), None) if pve is not None else None
        if ct is None or ct.node != host.name:
            return 255, "", f"Configuration file 'nodes/{host.name}/lxc/{vmid}.conf' does not exist\n"
        values = {a[i][2:]: a[i + 1] for i in range(0, len(a) - 1, 2) if a[i].startswith("--")}

        async def update() -> None:
            await pve._update_config(ct, "root@pam", values, [], [])

        loop = getattr(pve, "_loop", None)
        if loop is not None and loop.is_running():
            asyncio.run_coroutine_threadsafe(update(), loop).result(30)
            pve.save_now()
        else:
            asyncio.run(update())
        return 0, "", ""

    def facts(self, name: str) -> dict[str, Any] | None:
        """What fakepve reports about a host's hardware: its memory and network interfaces."""
        from tierzero.sandbox.pve_rules.nodes import stock_interfaces

        host = self.hosts.get(name)
        if host is None or host.witness:
            return None
        return {"memory_total": host.memory_total, "memory_available": host.memory_available,
                "interfaces": stock_interfaces(host.address, None, tuple(host.bridges))}
