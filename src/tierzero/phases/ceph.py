"""Ceph on the Proxmox hosts (part of the hypervisors phase): install, init, a monitor per node,
OSDs per node (whole devices, or an LV carved from the host VG), the pool, then health."""

from __future__ import annotations

import functools
import json
from typing import TYPE_CHECKING, Any, Mapping

from tierzero.adapters.retry import RetryExhausted, Transient, retry_async
from tierzero.adapters.ssh import retry_policy
from tierzero.engine.step import Step, StepContext
from tierzero.errors import OperationError
from tierzero.phases.hosts import host_ssh

if TYPE_CHECKING:
    from tierzero.spec.models import Platform, ProxmoxNode

LV_NAME = "ceph-osd"
LV_VG = "pve"


def _p(name: str) -> str:
    return f"hypervisors/ceph/{name}"


def osd_targets(spec: Platform, node: ProxmoxNode) -> list[str]:
    """Devices (or the VG/LV) that should carry OSDs on this node."""
    ceph = spec.proxmox.ceph
    if node.osd_devices:
        return list(node.osd_devices)
    if ceph.osd_device:
        return [ceph.osd_device]
    return [f"{LV_VG}/{LV_NAME}"]


def _install(name: str):
    async def run(ctx: StepContext, inputs: Any) -> Mapping[str, Any]:
        ssh = host_ssh(ctx, name)
        if (await ssh.run("command -v ceph-mon", check=False)).ok:
            return {"installed": False}
        await ssh.run("yes | pveceph install --repository no-subscription", hint="the host needs access to the Ceph package repository")
        return {"installed": True}

    return run


async def _init(ctx: StepContext, inputs: Any) -> Mapping[str, Any]:
    px = ctx.spec.proxmox
    ssh = host_ssh(ctx, px.nodes[0].name)
    if (await ssh.run("test -e /etc/pve/ceph.conf", check=False)).ok:
        return {"initialized": False}
    await ssh.run(["pveceph", "init", "--network", px.ceph.network or px.network])
    return {"initialized": True}


def _mon(name: str):
    async def run(ctx: StepContext, inputs: Any) -> Mapping[str, Any]:
        ssh = host_ssh(ctx, name)
        dump = await ssh.run("ceph mon dump --format json", check=False)
        mons = [m.get("name") for m in json.loads(dump.stdout or "{}").get("mons", [])] if dump.ok else []
        if name in mons:
            return {"created": False}
        await ssh.run("pveceph mon create")
        return {"created": True}

    return run


def _osds(name: str):
    async def run(ctx: StepContext, inputs: Any) -> Mapping[str, Any]:
        ssh = host_ssh(ctx, name)
        listed = json.loads((await ssh.run("ceph-volume lvm list --format json", check=False)).stdout or "{}")
        in_use: set[str] = set()
        for entries in listed.values():
            for e in entries:
                in_use.update(e.get("devices", []))
                in_use.update(x for x in (e.get("lv_path"), e.get("lv_name"), f"{e.get('vg_name')}/{e.get('lv_name')}") if x)
        created = []
        node = ctx.spec.proxmox.node(name)
        for target in osd_targets(ctx.spec, node):
            if target in in_use or f"/dev/{target}" in in_use:
                continue
            if target.startswith("/dev/"):
                await ssh.run(["pveceph", "osd", "create", target], hint=f"{target} must be an empty disk (wipe it with `ceph-volume lvm zap {target} --destroy`)")
            else:
                vg, lv = target.split("/", 1)
                if not (await ssh.run(["lvs", target], check=False)).ok:
                    await ssh.run(["lvcreate", "-L", f"{ctx.spec.proxmox.ceph.osd_lv_size_gb}G", "-n", lv, vg], hint=f"the volume group {vg} needs that much free space")
                await ssh.run("mkdir -p /var/lib/ceph/bootstrap-osd && ceph auth get client.bootstrap-osd > /var/lib/ceph/bootstrap-osd/ceph.keyring")
                await ssh.run(["ceph-volume", "lvm", "create", "--data", target])
            created.append(target)
        return {"created": created}

    return run


async def _pool(ctx: StepContext, inputs: Any) -> Mapping[str, Any]:
    ceph = ctx.spec.proxmox.ceph
    ssh = host_ssh(ctx, ctx.spec.proxmox.nodes[0].name)
    pools = (await ssh.run("ceph osd pool ls")).stdout.split()
    if ceph.pool in pools:
        return {"pool": ceph.pool, "created": False}
    await ssh.run(["pveceph", "pool", "create", ceph.pool, "--size", str(ceph.size), "--min_size", str(ceph.min_size), "--add_storages", "1"])
    return {"pool": ceph.pool, "created": True}


async def health_detail(ctx: StepContext) -> tuple[str, list[str]]:
    res = await host_ssh(ctx, ctx.spec.proxmox.nodes[0].name).run("ceph health detail --format json", check=False, timeout=60)
    if not res.ok:
        return "UNREACHABLE", [(res.stderr or res.stdout).strip() or "ceph did not answer"]
    data = json.loads(res.stdout or "{}")
    reasons = [f"{code}: {c.get('summary', {}).get('message', '')}" for code, c in (data.get("checks") or {}).items()]
    return str(data.get("status", "UNKNOWN")), reasons


async def _health(ctx: StepContext, inputs: Any) -> Mapping[str, Any]:
    last: dict[str, Any] = {}

    async def check() -> None:
        status, reasons = await health_detail(ctx)
        last.update(status=status, reasons=reasons)
        if status != "HEALTH_OK":
            raise Transient(f"{status}: {'; '.join(reasons)}")

    ctx.wait("Ceph HEALTH_OK")
    try:
        await retry_async(check, policy=retry_policy(ctx.connections, "wait"), on_retry=ctx.retry, what="the Ceph health check")
    except RetryExhausted as exc:
        if last.get("status") == "HEALTH_WARN":
            for reason in last["reasons"]:
                ctx.log(f"Ceph HEALTH_WARN: {reason}", level="warn")
            return {"status": "HEALTH_WARN", "reasons": last["reasons"]}
        raise OperationError(
            f"Ceph is {last.get('status', 'unknown')}: {'; '.join(last.get('reasons', [])) or exc.message}",
            hint="see `ceph health detail` on a host: check the OSD disks, the monitors and the Ceph network",
        ) from exc
    return {"status": "HEALTH_OK", "reasons": []}


def _osd_inputs(name: str, ctx: StepContext) -> dict[str, Any]:
    return {"ceph": ctx.spec.proxmox.ceph.model_dump(mode="json"), "devices": osd_targets(ctx.spec, ctx.spec.proxmox.node(name))}


def ceph_steps(spec: Platform) -> list[Step]:
    px = spec.proxmox
    names = [n.name for n in px.nodes]
    cfg = lambda ctx: ctx.spec.proxmox.ceph.model_dump(mode="json")  # noqa: E731
    out = [Step(_p(f"install/{n}"), "hypervisors", f"install Ceph on {n}", _install(n), inputs=cfg, needs=("hypervisors/quorum",), real_only=True) for n in names]
    out.append(Step(_p("init"), "hypervisors", "initialise Ceph", _init, inputs=cfg, needs=tuple(_p(f"install/{n}") for n in names), real_only=True))
    prev = _p("init")
    for n in names:  # one monitor at a time: concurrent mon creates race on the monmap
        out.append(Step(_p(f"mon/{n}"), "hypervisors", f"Ceph monitor on {n}", _mon(n), inputs=cfg, needs=(prev,), real_only=True))
        prev = _p(f"mon/{n}")
    for n in names:
        out.append(Step(_p(f"osd/{n}"), "hypervisors", f"Ceph OSDs on {n}", _osds(n),
                        inputs=functools.partial(_osd_inputs, n),
                        needs=(prev,), real_only=True))
    out.append(Step(_p("pool"), "hypervisors", f"Ceph pool {px.ceph.pool}", _pool, inputs=cfg, needs=tuple(_p(f"osd/{n}") for n in names), real_only=True))
    out.append(Step(_p("health"), "hypervisors", "wait for Ceph HEALTH_OK", _health, needs=(_p("pool"),)))
    return out
