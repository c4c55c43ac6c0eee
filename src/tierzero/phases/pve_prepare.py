"""What a fresh Proxmox VE install lacks for tierzero, and the check that it can get it.

- `ensure_token_access`: tierzero's API token is privilege-separated (privsep 1, as `pveum`
  makes tokens) and holds exactly the role `TierZero` (`ROLE_PRIVILEGES`) on `/` through one ACL
  entry; a fresh install has no ACL entry at all. Done as root over SSH with `pveum`.
- `hypervisors/capabilities` (the preflight): before any storage, image or VM is touched, for the
  token and every node that hosts a guest: the privileges each API call needs (GET
  /access/permissions against `tierzero.adapters.proxmox_privileges.CALLS`), the storages
  (exist, enabled, VM disks on `storage`, files on `image_storage`), the bridge (and VLAN
  awareness), free memory for the guests not created yet, and the Image Factory as the host sees
  it. Every failure names the setting and the command that fixes it; all are reported at once.
- `hypervisors/storage-content`: the image storage gets the content types tierzero puts there,
  through `PUT /storage/{storage}` (the whole list: PVE replaces it): `import` (download-url
  refuses `content=import` otherwise; installers before 9.0.7 and hosts upgraded from 8.x lack
  it), `snippets` (cloud-init user files belong on a storage that supports snippets; no installer
  layout has it) and `vztmpl` for LXC services. Sources: proxmox/pve-storage 9.1.0
  src/PVE/API2/Storage/Status.pm line 822, src/PVE/API2/Storage/Config.pm update 299-306;
  proxmox/pve-installer 9.1.0 Proxmox/Install/StorageConfig.pm; pve-docs 9.1.3 qm-cloud-init.adoc 147-149.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tierzero.adapters.protocols import ProxmoxApi
from tierzero.adapters.proxmox import TOKEN_NAME, TOKEN_USER, proxmox_client, token_for
from tierzero.adapters.proxmox_privileges import CALLS, ROLE_NAME, ROLE_PRIVILEGES, missing, role_command
from tierzero.engine.step import StepContext
from tierzero.errors import OperationError
from tierzero.phases.hosts import host_ssh
from tierzero.render.proxmox_hosts import vm_network_wanted, wanted_content

GiB = 1024**3
FILE_STORAGE_TYPES = ("dir", "nfs", "cifs", "cephfs", "btrfs")  # plugins that take import and snippets


def token_id() -> str:
    return f"{TOKEN_USER}!{TOKEN_NAME}"


def acl_command(token: str) -> str:
    return f"pveum acl modify / --tokens {shlex.quote(token)} --roles {ROLE_NAME}"


# ---------------------------------------------------------------------------- token, role, ACL

async def ensure_token_access(ctx: StepContext, host: str) -> dict[str, Any]:
    """The role with exactly ROLE_PRIVILEGES, and the token's one ACL entry on `/` (over SSH, root)."""
    ssh = host_ssh(ctx, host)
    token = token_id()
    changed: list[str] = []
    roles = json.loads((await ssh.run(["pveum", "role", "list", "--output-format", "json"])).stdout or "[]")
    have = next((r for r in roles if r.get("roleid") == ROLE_NAME), None)
    privs = ",".join(ROLE_PRIVILEGES)
    if have is None:
        await ssh.run(["pveum", "role", "add", ROLE_NAME, "--privs", privs])
        changed.append(f"role {ROLE_NAME} added ({len(ROLE_PRIVILEGES)} privileges)")
    elif sorted(str(have.get("privs") or "").split(",")) != sorted(ROLE_PRIVILEGES):
        await ssh.run(["pveum", "role", "modify", ROLE_NAME, "--privs", privs])
        changed.append(f"role {ROLE_NAME} set to its {len(ROLE_PRIVILEGES)} privileges")
    acl = json.loads((await ssh.run(["pveum", "acl", "list", "--output-format", "json"])).stdout or "[]")
    if not any(e.get("path") == "/" and e.get("ugid") == token and e.get("roleid") == ROLE_NAME for e in acl):
        await ssh.run(["pveum", "acl", "modify", "/", "--tokens", token, "--roles", ROLE_NAME])
        changed.append(f"ACL / -> {token}: {ROLE_NAME}")
    for line in changed:
        ctx.log(line)
    return {"role": ROLE_NAME, "privileges": list(ROLE_PRIVILEGES), "acl": "/", "changed": changed}


# ---------------------------------------------------------------------------- storage content

@dataclass(frozen=True)
class StorageContentInputs:
    first: str  # the node whose API changes the (cluster-wide) storage configuration
    storage: str  # hypervisors.proxmox.image_storage
    content: tuple[str, ...]  # what it must hold (`tierzero.render.proxmox_hosts.wanted_content`)


def storage_content_inputs(ctx: StepContext) -> StorageContentInputs:
    px = ctx.spec.proxmox
    return StorageContentInputs(px.nodes[0].name, px.image_storage, tuple(wanted_content(ctx.spec)))


async def ensure_storage_content(ctx: StepContext, inputs: StorageContentInputs) -> Mapping[str, Any]:
    sid, wanted = inputs.storage, inputs.content
    api = proxmox_client(ctx, inputs.first)
    config = await api.call("get", f"storage/{sid}")
    current = [c for c in str(config.get("content") or "").split(",") if c and c != "none"]
    adding = [c for c in wanted if c not in current]
    if not adding:
        return {"storage": sid, "content": current, "added": []}
    content = ",".join(current + adding)
    ctx.log(f"storage {sid}: enabling content {','.join(adding)} (PUT /storage/{sid} content={content})", level="notice")
    await api.call("put", f"storage/{sid}", content=content, digest=config.get("digest"))
    after = [c for c in str((await api.call("get", f"storage/{sid}")).get("content") or "").split(",") if c]
    dropped = [c for c in adding if c not in after]
    if dropped:  # PVE drops content types the storage's plugin does not support, with a warning only
        raise OperationError(f"storage {sid} (type {config.get('type')}) cannot hold {', '.join(dropped)}",
                             hint="set hypervisors.proxmox.image_storage to a directory storage such as `local`")
    return {"storage": sid, "content": after, "added": adding}


# ---------------------------------------------------------------------------- the preflight

@dataclass(frozen=True)
class Guest:
    """A VM or LXC the spec puts on a node."""

    name: str
    vmid: int
    memory_gb: float
    lxc: bool


@dataclass(frozen=True)
class CapabilityInputs:
    """Everything the capability preflight checks the hosts against."""

    first: str  # the node whose API answers for the cluster
    token: str | None  # the spec's own API token id (nodes[0].token_id), None: tierzero's
    storage: str  # VM disks and container volumes
    image_storage: str  # images to import, snippets, LXC templates
    bridge: str
    vlan: int | None
    ceph_pool: str | None  # the pool (and storage) the Ceph steps create later, when Ceph is on
    guests: tuple[tuple[str, tuple[Guest, ...]], ...]  # (node, its guests), by node
    factories: tuple[str, ...]  # the clusters' Image Factories, as the spec gives them
    role: tuple[str, ...]  # the privileges of tierzero's role
    sdn: bool = False  # the VM network is tierzero's SDN zone (hosts on cloud instances)

    @property
    def lxc(self) -> bool:
        return any(g.lxc for _, gs in self.guests for g in gs)


def capability_inputs(ctx: StepContext) -> CapabilityInputs:
    from tierzero.render.vmids import assign_vmids

    spec, px = ctx.spec, ctx.spec.proxmox
    vmids = assign_vmids(spec)
    by_node: dict[str, list[Guest]] = {}
    for cluster in spec.clusters:
        for _, node in cluster.nodes():
            if node.node is not None:  # a node on an A1 instance is no guest of a Proxmox host
                by_node.setdefault(node.node, []).append(Guest(node.name, vmids[(cluster.name, node.name)], node.memory_gb, False))
    for svc in spec.infisical_services():
        by_node.setdefault(svc.node, []).append(Guest(svc.name, svc.vmid, svc.memory_gb, True))
    return CapabilityInputs(
        first=px.nodes[0].name, token=px.nodes[0].token_id, storage=px.storage, image_storage=px.image_storage,
        bridge=px.bridge, vlan=px.vlan, ceph_pool=px.ceph.pool if px.ceph.enabled else None,
        guests=tuple((node, tuple(gs)) for node, gs in sorted(by_node.items())),
        factories=tuple(dict.fromkeys(c.image_factory for c in spec.clusters)), role=ROLE_PRIVILEGES,
        sdn=vm_network_wanted(spec),
    )


def _calls_for(inputs: CapabilityInputs) -> list[tuple[str, str]]:
    chosen = [k for k in CALLS if "/lxc" not in k[1] and "/aplinfo" not in k[1] and "ceph" not in k[1] and "/sdn" not in k[1]]
    if inputs.sdn:
        chosen += [k for k in CALLS if "/sdn" in k[1]]
    if inputs.lxc:
        chosen += [k for k in CALLS if "/lxc" in k[1] or "/aplinfo" in k[1]]
    if inputs.ceph_pool is not None:
        chosen.append(("GET", "/cluster/ceph/status"))
    return chosen


async def _privileges(api: ProxmoxApi, token: str, inputs: CapabilityInputs) -> list[str]:
    held = await api.call("get", "access/permissions")
    pairs = [(node, g.vmid) for node, gs in inputs.guests for g in gs] or [(inputs.first, 100)]
    bridge = inputs.bridge + (f"/{inputs.vlan}" if inputs.vlan else "")
    problems = []
    for method, path in _calls_for(inputs):
        rule = CALLS[(method, path)]
        for node, vmid in pairs:
            values = {"node": node, "vmid": vmid, "storage": inputs.storage if path.endswith(("/qemu", "/lxc")) else inputs.image_storage,
                      "image_storage": inputs.image_storage, "bridge": bridge}
            lacking = missing(rule, held, values)
            if lacking:
                problems.append(f"API token {token} may not {method} {path}: lacks {'; '.join(lacking)}")
                break
    if problems:
        fix = (f"grant tierzero's role: `{role_command()}` then `{acl_command(token)}` (tierzero does both when it makes its own token; "
               "for a token of your own, grant them yourself)")
        problems = [f"{p}; fix: {fix}" for p in problems]
    return problems


async def _storages(api: ProxmoxApi, node: str, guests: tuple[Guest, ...], inputs: CapabilityInputs) -> list[str]:
    storage, image_storage = inputs.storage, inputs.image_storage
    listed = {s["storage"]: s for s in await api.call("get", f"nodes/{node}/storage")}
    names = ", ".join(sorted(listed)) or "none"
    problems = []
    disk = listed.get(storage)
    needs = (["images"] if any(not g.lxc for g in guests) else []) + (["rootdir"] if any(g.lxc for g in guests) else [])
    if disk is None and inputs.ceph_pool is not None and storage == inputs.ceph_pool:
        pass  # the Ceph steps make it (`pveceph pool create --add_storages`), after this check
    elif disk is None:
        problems.append(f"{node}: storage {storage!r} (hypervisors.proxmox.storage) does not exist there (it has: {names}); "
                        f"fix: set hypervisors.proxmox.storage to one of them that holds VM disks (`pvesm status --content images`)")
    elif not disk.get("enabled", 1) or not disk.get("active", 1):
        problems.append(f"{node}: storage {storage!r} is disabled or inactive; fix: `pvesm set {storage} --disable 0` and check `pvesm status`")
    else:
        content = str(disk.get("content") or "").split(",")
        lacking = [c for c in needs if c not in content]
        if lacking:
            problems.append(f"{node}: storage {storage!r} holds {disk.get('content')}, not {', '.join(lacking)}; "
                            f"fix: `pvesm set {storage} --content {','.join(dict.fromkeys(content + lacking))}` or pick another storage")
    image = listed.get(image_storage)
    if image is None:
        problems.append(f"{node}: storage {image_storage!r} (hypervisors.proxmox.image_storage) does not exist there (it has: {names}); "
                        "fix: set hypervisors.proxmox.image_storage to a directory storage such as `local`")
    elif image.get("type") not in FILE_STORAGE_TYPES:
        problems.append(f"{node}: storage {image_storage!r} is {image.get('type')}, which holds no files (images to import, snippets); "
                        "fix: set hypervisors.proxmox.image_storage to a directory storage such as `local`")
    return problems


async def _bridge(api: ProxmoxApi, node: str, inputs: CapabilityInputs) -> list[str]:
    bridge, vlan = inputs.bridge, inputs.vlan
    bridges = {i["iface"]: i for i in await api.call("get", f"nodes/{node}/network", type="any_bridge")}
    found = bridges.get(bridge)
    if found is None:
        return [f"{node}: bridge {bridge!r} (hypervisors.proxmox.bridge) does not exist (bridges: {', '.join(sorted(bridges)) or 'none'}); "
                f"fix: create it (`pvesh create /nodes/{node}/network --iface {bridge} --type bridge --autostart 1 && "
                f"pvesh set /nodes/{node}/network`) or set hypervisors.proxmox.bridge to an existing one"]
    if vlan and not found.get("bridge_vlan_aware"):
        return [f"{node}: bridge {bridge} is not VLAN aware but hypervisors.proxmox.vlan is {vlan}; "
                f"fix: `pvesh set /nodes/{node}/network/{bridge} --type bridge --bridge_vlan_aware 1 && pvesh set /nodes/{node}/network`"]
    return []


async def _memory(api: ProxmoxApi, node: str, guests: tuple[Guest, ...], existing: set[int]) -> list[str]:
    planned = [g for g in guests if g.vmid not in existing]
    if not planned:
        return []
    memory = (await api.call("get", f"nodes/{node}/status")).get("memory") or {}
    free = int(memory.get("available") or memory.get("free") or 0)
    need = sum(g.memory_gb for g in planned) * GiB
    if need > free:
        return [f"{node}: {free / GiB:.1f} GiB free, the guests not created yet ({', '.join(g.name for g in planned)}) need {need / GiB:.1f} GiB; "
                "fix: lower their memory_gb, move some to another node (their `node`), or free memory on the host"]
    return []


async def _factory(ctx: StepContext, node: str, factories: tuple[str, ...]) -> list[str]:
    """Each Image Factory as the host reaches it (`curl` there: the host downloads the image)."""
    from tierzero.adapters.image_factory import factory_url

    problems = []
    for url in dict.fromkeys(factory_url(ctx.connections, f) for f in factories):
        probe = await host_ssh(ctx, node).run(["curl", "-fsS", "-o", "/dev/null", "--max-time", "15", f"{url}/versions"], check=False)
        if not probe.ok:
            why = (probe.stderr.strip() or probe.stdout.strip() or f"exit {probe.exit_status}").splitlines()[-1]
            problems.append(f"{node}: cannot reach the Image Factory at {url} ({why}); fix: let the host reach it over HTTPS "
                            f"(proxy: datacenter.cfg http_proxy), or set clusters[].image_factory to a factory it reaches")
    return problems


async def capabilities(ctx: StepContext, inputs: CapabilityInputs) -> Mapping[str, Any]:
    token, _secret = token_for(ctx)
    api = proxmox_client(ctx, inputs.first)
    problems = await _privileges(api, token, inputs)
    if problems:  # without the privileges the other checks cannot read what they need
        raise OperationError("the Proxmox API token cannot do what tierzero needs:\n  " + "\n  ".join(problems),
                             hint=f"grant the role and ACL shown, then run again ({len(problems)} problem(s))")
    existing = {int(g.get("vmid", -1)) for g in await api.guests()}
    for node, guests in inputs.guests:
        node_api = proxmox_client(ctx, node)
        problems += await _storages(node_api, node, guests, inputs)
        problems += await _bridge(node_api, node, inputs)
        problems += await _memory(node_api, node, guests, existing)
        if inputs.factories:
            problems += await _factory(ctx, node, inputs.factories)
    if problems:
        raise OperationError("the Proxmox hosts cannot take this spec as they are:\n  " + "\n  ".join(problems),
                             hint=f"fix the settings or hosts named above, then run again ({len(problems)} problem(s))")
    return {"token": token, "nodes": [node for node, _ in inputs.guests], "calls": len(_calls_for(inputs)),
            "checked": ["privileges", "storage", "bridge", "memory", "image factory"]}
