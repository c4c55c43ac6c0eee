"""What tierzero's Proxmox API token may do, and why: every API call tierzero makes with the
permission rule Proxmox VE 9.1 checks for it, the role built from them, and a check of a token's
privileges against the rules (the preflight), without calling anything that would change state.

`CALLS` copies each method's `permissions.check` from the API schema (pve-docs 9.1.3
api-viewer/apidata.js; tests compare every entry with /work/shared/oracles/pve/apidata.json).
Methods whose schema says only `user: all` check in their code; their rules here come from that
code: VM create (proxmox/qemu-server 9.1.0 src/PVE/API2/Qemu.pm 1264-1320: VM.Allocate on the VM,
Datastore.AllocateSpace on each disk's storage, the key privileges of $check_vm_modify_config_perm,
SDN.Use on the bridge) and CT create (proxmox/pve-container 6.0.18 src/PVE/API2/LXC.pm 291-356,
src/PVE/LXC.pm check_ct_modify_config_perm 1670-1760).

`ROLE_PRIVILEGES` is the smallest set that passes every rule (an `or` takes its least powerful
branch: Sys.AccessNetwork on the node for download-url, not Sys.Modify on /); a test derives it
from the schema, so a new call without its privilege here fails the suite.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

ROLE_NAME = "TierZero"

Rule = list[Any]  # ["perm", path, [privs], "any"?, 1?] | ["and"|"or", rule, ...]

# (method, path template) -> the permission rule, with {placeholders} filled from the call.
CALLS: dict[tuple[str, str], Rule | None] = {
    # read the cluster
    ("GET", "/version"): None,  # user: all
    ("GET", "/nodes"): None,
    ("GET", "/cluster/resources"): None,
    ("GET", "/cluster/status"): ["perm", "/", ["Sys.Audit"]],
    ("GET", "/cluster/ceph/status"): ["perm", "/", ["Sys.Audit", "Datastore.Audit"], "any", 1],
    ("GET", "/access/permissions"): None,
    ("GET", "/nodes/{node}/status"): ["perm", "/nodes/{node}", ["Sys.Audit"]],
    ("GET", "/nodes/{node}/network"): None,
    ("GET", "/nodes/{node}/tasks/{upid}/status"): None,  # the task's owner
    ("GET", "/nodes/{node}/tasks/{upid}/log"): None,
    # storage
    ("GET", "/storage/{storage}"): ["perm", "/storage/{storage}", ["Datastore.Allocate"]],
    ("PUT", "/storage/{storage}"): ["perm", "/storage", ["Datastore.Allocate"]],
    ("GET", "/nodes/{node}/storage"): None,  # lists what the caller may audit
    ("GET", "/nodes/{node}/storage/{storage}/content"): ["perm", "/storage/{storage}", ["Datastore.Audit", "Datastore.AllocateSpace"], "any", 1],
    ("POST", "/nodes/{node}/storage/{storage}/download-url"): [
        "and", ["perm", "/storage/{storage}", ["Datastore.AllocateTemplate"]],
        ["or", ["perm", "/", ["Sys.Audit", "Sys.Modify"]], ["perm", "/nodes/{node}", ["Sys.AccessNetwork"]]]],
    ("GET", "/nodes/{node}/aplinfo"): None,
    ("POST", "/nodes/{node}/aplinfo"): ["perm", "/storage/{storage}", ["Datastore.AllocateTemplate"]],
    # the VM network across cloud hosts: one VXLAN zone and its vnet (tierzero.phases.vm_network)
    ("GET", "/cluster/sdn/zones"): None,  # lists what the caller may audit
    ("POST", "/cluster/sdn/zones"): ["perm", "/sdn/zones", ["SDN.Allocate"]],
    ("GET", "/cluster/sdn/vnets"): None,
    ("POST", "/cluster/sdn/vnets"): ["perm", "/sdn/zones/{zone}", ["SDN.Allocate"]],
    ("PUT", "/cluster/sdn"): ["perm", "/sdn", ["SDN.Allocate"]],
    # VMs
    ("POST", "/nodes/{node}/qemu"): [  # from qemu-server's code (the schema says `user: all`)
        "and", ["perm", "/vms/{vmid}", ["VM.Allocate"]], ["perm", "/storage/{storage}", ["Datastore.AllocateSpace"]],
        ["perm", "/storage/{image_storage}", ["Datastore.AllocateSpace", "Datastore.Audit"], "any", 1],
        ["perm", "/sdn/zones/localnetwork/{bridge}", ["SDN.Use"]],
        ["perm", "/vms/{vmid}", ["VM.Config.CPU"]], ["perm", "/vms/{vmid}", ["VM.Config.Memory"]],
        ["perm", "/vms/{vmid}", ["VM.Config.HWType"]], ["perm", "/vms/{vmid}", ["VM.Config.Options"]],
        ["perm", "/vms/{vmid}", ["VM.Config.Disk"]], ["perm", "/vms/{vmid}", ["VM.Config.Network"]],
        ["perm", "/vms/{vmid}", ["VM.Config.Cloudinit", "VM.Config.Network"], "any", 1]],
    ("GET", "/nodes/{node}/qemu/{vmid}/config"): ["perm", "/vms/{vmid}", ["VM.Audit"]],
    ("POST", "/nodes/{node}/qemu/{vmid}/config"): [
        "perm", "/vms/{vmid}", ["VM.Config.Disk", "VM.Config.CDROM", "VM.Config.CPU", "VM.Config.Memory", "VM.Config.Network",
                                "VM.Config.HWType", "VM.Config.Options", "VM.Config.Cloudinit"], "any", 1],
    ("PUT", "/nodes/{node}/qemu/{vmid}/resize"): ["perm", "/vms/{vmid}", ["VM.Config.Disk"]],
    ("GET", "/nodes/{node}/qemu/{vmid}/status/current"): ["perm", "/vms/{vmid}", ["VM.Audit"]],
    ("POST", "/nodes/{node}/qemu/{vmid}/status/start"): ["perm", "/vms/{vmid}", ["VM.PowerMgmt"]],
    ("POST", "/nodes/{node}/qemu/{vmid}/status/stop"): ["perm", "/vms/{vmid}", ["VM.PowerMgmt"]],
    ("DELETE", "/nodes/{node}/qemu/{vmid}"): ["perm", "/vms/{vmid}", ["VM.Allocate"]],
    # containers
    ("POST", "/nodes/{node}/lxc"): [  # from pve-container's code (the schema says `user: all`)
        "and", ["perm", "/vms/{vmid}", ["VM.Allocate"]], ["perm", "/storage/{storage}", ["Datastore.AllocateSpace"]],
        ["perm", "/storage/{image_storage}", ["Datastore.AllocateSpace", "Datastore.Audit"], "any", 1],
        ["perm", "/sdn/zones/localnetwork/{bridge}", ["SDN.Use"]],
        ["perm", "/vms/{vmid}", ["VM.Config.CPU"]], ["perm", "/vms/{vmid}", ["VM.Config.Memory"]],
        ["perm", "/vms/{vmid}", ["VM.Config.Network"]], ["perm", "/vms/{vmid}", ["VM.Config.Options"]]],
    ("GET", "/nodes/{node}/lxc/{vmid}/config"): ["perm", "/vms/{vmid}", ["VM.Audit"]],
    ("GET", "/nodes/{node}/lxc/{vmid}/status/current"): ["perm", "/vms/{vmid}", ["VM.Audit"]],
    ("GET", "/nodes/{node}/lxc/{vmid}/interfaces"): ["perm", "/vms/{vmid}", ["VM.Audit"]],
    ("POST", "/nodes/{node}/lxc/{vmid}/status/start"): ["perm", "/vms/{vmid}", ["VM.PowerMgmt"]],
    ("POST", "/nodes/{node}/lxc/{vmid}/status/stop"): ["perm", "/vms/{vmid}", ["VM.PowerMgmt"]],
    ("DELETE", "/nodes/{node}/lxc/{vmid}"): ["perm", "/vms/{vmid}", ["VM.Allocate"]],
}

# The calls whose rule above comes from code, not from the schema's `permissions.check`.
FROM_CODE = frozenset({("POST", "/nodes/{node}/qemu"), ("POST", "/nodes/{node}/lxc")})

# The least privileges that pass every rule in CALLS (a test recomputes this from the schema).
ROLE_PRIVILEGES: tuple[str, ...] = (
    "Datastore.Allocate", "Datastore.AllocateSpace", "Datastore.AllocateTemplate", "SDN.Allocate", "SDN.Use", "Sys.AccessNetwork",
    "Sys.Audit", "VM.Allocate", "VM.Audit", "VM.Config.CPU", "VM.Config.Disk", "VM.Config.HWType", "VM.Config.Memory",
    "VM.Config.Network", "VM.Config.Options", "VM.PowerMgmt",
)

Held = Mapping[str, Iterable[str]]  # ACL path -> privileges, as GET /access/permissions answers


def privileges_at(held: Held, path: str) -> set[str]:
    """The privileges that apply at `path`: those of the most specific ACL path above it
    (ACLs propagate down; a more specific entry replaces the one above, as in PVE)."""
    best, found = -1, set()
    for granted, privs in held.items():
        base = granted.rstrip("/") or "/"
        if base == "/" or path == base or path.startswith(base + "/"):
            depth = 0 if base == "/" else base.count("/")
            if depth > best:
                best, found = depth, set(privs)
    return found


def _fill(path: str, values: Mapping[str, Any]) -> str:
    for key, value in values.items():
        path = path.replace("{" + key + "}", str(value))
    return path


def missing(rule: Rule | None, held: Held, values: Mapping[str, Any]) -> list[str]:
    """What the rule lacks in `held`: [] when it passes, else "path: priv|priv" items."""
    if rule is None:
        return []
    form = rule[0]
    if form == "perm":
        path, privs = _fill(rule[1], values), list(rule[2])
        have = privileges_at(held, path)
        if "any" in rule[3:]:
            return [] if have & set(privs) else [f"{path}: {'|'.join(privs)}"]
        return [f"{path}: {p}" for p in privs if p not in have]
    if form == "and":
        return [m for sub in rule[1:] for m in missing(sub, held, values)]
    if form == "or":
        branches = [missing(sub, held, values) for sub in rule[1:]]
        return [] if any(not b for b in branches) else [" or ".join("; ".join(b) for b in branches)]
    return [f"unknown rule {form!r}"]


def rule_privileges(rule: Rule | None) -> set[str]:
    """Every privilege a rule mentions (for minimality checks)."""
    if rule is None:
        return set()
    if rule[0] == "perm":
        return set(rule[2])
    return {p for sub in rule[1:] for p in rule_privileges(sub)}


def role_command() -> str:
    privs = ",".join(ROLE_PRIVILEGES)
    return f'pveum role add {ROLE_NAME} --privs "{privs}"'
