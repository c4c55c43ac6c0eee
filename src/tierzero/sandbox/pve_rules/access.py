"""Who may do what on the sandbox's Proxmox VE: the permission rules fakepve 0.5.0 lacks, as a
mixin in front of it (fakepve is configured, not patched).

- A fresh install has no ACL entries: only the `root@pam` login holds privileges. Source:
  proxmox/pve-installer 9.1.0 Proxmox/Install.pm line 1561 (user.cfg is `user:root@pam:...` only).
- Only the literal `root@pam` login skips permission checks; its API tokens do not. Source:
  proxmox/pve-access-control 9.0.4 src/PVE/RPCEnvironment.pm check_api2_permissions 549-566.
- A privilege-separated token (privsep 1, the default) holds only what ACL entries grant the token
  itself; a token with privsep 0 holds its owner's privileges (all of them for root@pam). Source:
  pve-access-control 9.0.4 src/PVE/RPCEnvironment.pm permissions() 136-176, src/PVE/AccessControl.pm
  roles() 1777-1840; src/PVE/API2/User.pm generate_token line 813 (privsep defaults to 1).
- VM config keys need the privilege of their group; a key in no group is root-only and refused with
  a plain die (HTTP 500 `only root can set '<key>' config`), `serialN` other than `socket` likewise.
  Source: proxmox/qemu-server 9.1.0 src/PVE/API2/Qemu.pm $cpuoptions..$cloudinitoptions 759-832,
  $check_vm_create_serial_perm 834, $check_vm_modify_config_perm 961-1006.
- `usbN` needs VM.Config.HWType, and `host=spice` or a mapping (Mapping.Use on /mapping/usb/<m>);
  another host device is root-only. `hostpciN` needs a mapping (Mapping.Use on /mapping/pci/<m>,
  then VM.Config.HWType); a host device is root-only "for non-mapped devices". A custom CPU model
  (`custom-<name>`), unless unchanged, needs Sys.Audit on /nodes. Source: qemu-server 9.1.0
  src/PVE/API2/Qemu.pm check_usb_perm 850-873, check_hostpci_perm 889-903, $check_cpu_model_access
  709-727.
- GET /cluster/status and /cluster/ceph/status check their schema rule too (fakepve serves them
  without). Source: apidata.json (pve-docs 9.1.3) permissions of both.
- Create checks, in order: quorum, the pool exists, Datastore.AllocateSpace on `storage`, VM.Allocate
  on /vms/<vmid> or the pool (a bare "Permission check failed"), each drive's storage
  (check_storage_access), the config keys, the bridges. Source: qemu-server 9.1.0
  src/PVE/API2/Qemu.pm create_vm 1255-1322.
- `startup` also needs Sys.Modify on / ("it changes host behaviour"); `vmstate` needs both
  VM.Config.Disk and VM.PowerMgmt. Source: qemu-server 9.1.0 src/PVE/API2/Qemu.pm
  $check_vm_modify_config_perm 984-1000; a missing privilege is named alone, the first missing
  one: pve-access-control 9.0.4 src/PVE/RPCEnvironment.pm check 291-305.
- A NIC on a bridge needs SDN.Use on /sdn/zones/localnetwork/<bridge>[/<tag>]. Source:
  qemu-server 9.1.0 src/PVE/QemuServer.pm check_bridge_access 6330; proxmox/pve-guest-common
  src/PVE/GuestHelpers.pm check_vnet_access 397-421.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from fakepve.model import PveError
from fakepve.shapes import PRIVILEGES

ROOT = "root@pam"

# qemu-server 9.1.0 src/PVE/API2/Qemu.pm lines 759-832: the key groups and their privilege.
CPU_OPTIONS = {"cores", "cpu", "runningcpu", "cpulimit", "cpuunits", "numa", "smp", "sockets", "vcpus"}
MEMORY_OPTIONS = {"memory", "balloon", "shares", "allow-ksm"}
HWTYPE_OPTIONS = {"acpi", "hotplug", "kvm", "machine", "runningmachine", "scsihw", "smbios1", "tablet", "vga", "watchdog",
                  "audio0", "rng0"}
GENERAL_OPTIONS = {"agent", "autostart", "bios", "description", "keyboard", "localtime", "migrate_downtime", "migrate_speed",
                   "name", "onboot", "ostype", "protection", "reboot", "startdate", "startup", "tdf", "template"}
DISK_OPTIONS = {"boot", "bootdisk", "vmstatestorage"}
CLOUDINIT_OPTIONS = {"cicustom", "cipassword", "citype", "ciuser", "ciupgrade", "nameserver", "searchdomain", "sshkeys"}
DRIVE_KEY = re.compile(r"^(ide[0-3]|sata[0-5]|scsi(?:[0-9]|[12][0-9]|30)|virtio(?:[0-9]|1[0-5])|efidisk0|tpmstate0)$")
# Create parameters that are not config keys (qemu-server API2/Qemu.pm create_vm).
CREATE_ONLY = {"node", "vmid", "archive", "storage", "force", "unique", "live-restore", "pool", "bwlimit", "start",
               "ha-managed", "import-working-storage", "digest", "delete", "revert", "skiplock", "background_delay"}


def vm_key_privileges(key: str, value: Any = None) -> tuple[str, ...] | None:
    """The privileges (any one suffices) a VM config key needs; None: only root@pam may set it;
    (): checked elsewhere (drives: their storage)."""
    if DRIVE_KEY.match(key) or key == "cdrom" or re.fullmatch(r"unused\d+", key) or key == "tags":
        return ()
    if re.fullmatch(r"serial\d+", key):
        return ("VM.Config.HWType",) if value in (None, "socket") else None
    if re.fullmatch(r"(usb|hostpci)\d+", key):
        return ("VM.Config.HWType",)  # and the device's own rule (AccessRules._vm_key_check)
    if re.fullmatch(r"virtiofs\d+", key):
        return None  # directory mappings are not modelled here
    if key in CPU_OPTIONS or re.fullmatch(r"numa\d+", key):
        return ("VM.Config.CPU",)
    if key in MEMORY_OPTIONS:
        return ("VM.Config.Memory",)
    if key in HWTYPE_OPTIONS:
        return ("VM.Config.HWType",)
    if key in GENERAL_OPTIONS:
        return ("VM.Config.Options",)
    if key == "freeze":
        return ("VM.PowerMgmt",)
    if key in DISK_OPTIONS:
        return ("VM.Config.Disk",)
    if re.fullmatch(r"net\d+", key) or key == "running-nets-host-mtu":
        return ("VM.Config.Network",)
    if key in CLOUDINIT_OPTIONS or re.fullmatch(r"ipconfig\d+", key):
        return ("VM.Config.Cloudinit", "VM.Config.Network")
    return None


def _cputype(value: Any) -> str:
    """The `cputype` of a `cpu` option (`[cputype=]<model>,flags=...`), "" for none."""
    if not value:
        return ""
    first, _, _rest = str(value).partition(",")
    return first.split("=", 1)[1] if first.startswith("cputype=") else first


def _props(value: Any) -> dict[str, str]:
    out = {}
    for part in str(value or "").split(","):
        key, sep, val = part.partition("=")
        if sep:
            out[key] = val
    return out


class AccessRules:
    """Mixin for FakePve (before it in the MRO)."""

    acl: Any
    apitokens: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[call-arg]
        self.acl = {}  # a fresh install: no ACL entries at all (not fakepve's "anyone may do anything")
        self.token_privsep: dict[str, int] = {}  # token id -> privsep; a token missing here has the default, 1

    # ------------------------------------------------------------ privileges

    def add_token(self, tokenid: str, secret: str, *, privsep: int = 1) -> None:
        """A token as `pveum user token add` makes it (tests that skip the hosts' pveum)."""
        self.token_privsep[tokenid] = privsep
        self.apitokens[tokenid] = secret

    def privsep(self, tokenid: str) -> int:
        return int(self.token_privsep.get(tokenid, 1))

    def _granted(self, who: str, path: str, priv: str) -> bool:
        paths = [path]
        if path.startswith("/vms/"):
            vmid = path.split("/")[2]
            paths += ["/vms"] + ["/pool/" + name for name, ids in getattr(self, "pools", {}).items()
                                 if vmid.isdigit() and int(vmid) in ids]
        for granted, privs in (self.acl or {}).get(who, []):
            if priv in privs and (granted == "/" or any(p == granted or p.startswith(granted + "/") for p in paths)):
                return True
        return False

    def allowed(self, user: str, path: str, priv: str) -> bool:
        if "|" in priv:  # any one of them (check_vm_perm with `any`)
            return any(self.allowed(user, path, p) for p in priv.split("|"))
        if user == ROOT:
            return True
        owner, _, token = user.partition("!")
        if token and self.privsep(user) == 0:
            return owner == ROOT or self._granted(owner, path, priv)
        if token:  # privilege-separated: the token's own grants, within its owner's
            return self._granted(user, path, priv) and (owner == ROOT or self._granted(owner, path, priv))
        return self._granted(user, path, priv)

    def check_permissions(self, user: Any, perms: Any, values: Any, declared: Any = None) -> None:
        if user == ROOT:
            return
        if perms is not None and "check" not in perms and (perms.get("user") == "world" or (perms.get("user") == "all" and user is not None)):
            return
        ok, why = (False, "user != root@pam") if perms is None or "check" not in perms else \
            self._check(user, perms["check"], values, declared)  # type: ignore[attr-defined]
        if not ok:
            raise PveError(403, f"Permission check failed ({why})" if why else "Permission check failed")

    async def _permissions(self, v: dict[str, Any], user: str) -> dict[str, dict[str, int]]:
        """GET /access/permissions with privsep: a separated token sees only its own grants."""
        who = v.get("userid") or user
        if who == ROOT or ("!" in who and self.privsep(who) == 0 and who.split("!")[0] == ROOT):
            held: dict[str, set[str]] = {"/": set(PRIVILEGES)}
        else:
            held = {}
            names = [who] if "!" in who and self.privsep(who) else [who, who.split("!")[0]]
            for name in dict.fromkeys(names):
                for path, privs in (self.acl or {}).get(name, []):
                    held.setdefault(path, set()).update(privs)
        if v.get("path") is not None:
            held = {p: ps for p, ps in held.items() if v["path"] == p or p == "/" or v["path"].startswith(p + "/")}
        return {path: dict.fromkeys(sorted(privs), 1) for path, privs in sorted(held.items())}

    async def _cluster_status(self, request: web.Request) -> Any:
        """fakepve serves this without its schema rule: Sys.Audit on / (apidata.json GET /cluster/status)."""
        from fakepve.server import USER

        self.check_permissions(request[USER], {"check": ["perm", "/", ["Sys.Audit"]]}, {})
        return await super()._cluster_status(request)  # type: ignore[misc]

    async def _ceph_status(self, request: web.Request) -> Any:
        """Sys.Audit or Datastore.Audit on / (apidata.json GET /cluster/ceph/status)."""
        from fakepve.server import USER

        self.check_permissions(request[USER], {"check": ["perm", "/", ["Sys.Audit", "Datastore.Audit"], "any", 1]}, {})
        return await super()._ceph_status(request)  # type: ignore[misc]

    # ------------------------------------------------------------ VM config keys

    def _config_priv(self, key: str) -> str:
        privs = vm_key_privileges(key)
        if privs is None:
            return "root"
        return "|".join(privs) if privs else "VM.Config.Disk"  # drives: fakepve's own (PVE checks their storage)

    def _vm_key_check(self, user: str, vmid: int, keys: dict[str, Any], pool: str | None = None,
                      existing: dict[str, Any] | None = None) -> None:
        """The config key checks in qemu-server's order, before anything else of the request:
        $check_vm_modify_config_perm, serial, usb, hostpci, the bridges, the CPU model."""
        if user == ROOT:
            return

        def held(priv: str) -> bool:
            return self.allowed(user, f"/vms/{vmid}", priv) or bool(pool and self.allowed(user, f"/pool/{pool}", priv))

        def vm_perm(priv: str) -> None:
            if not held(priv):
                raise PveError(403, f"Permission check failed (/vms/{vmid}, {priv})")

        devices = re.compile(r"(serial|usb|hostpci)\d+")
        for key in sorted(keys):
            if key in CREATE_ONLY or devices.fullmatch(key):
                continue
            privs = vm_key_privileges(key, keys[key])
            if privs is None:
                raise PveError(500, f"only root can set '{key}' config")
            if privs and not any(held(p) for p in privs):
                raise PveError(403, f"Permission check failed (/vms/{vmid}, {'|'.join(privs)})")
            if key == "startup":
                self.require(user, "/", "Sys.Modify")  # type: ignore[attr-defined]
        for key in sorted(k for k in keys if re.fullmatch(r"serial\d+", k)):
            if keys[key] not in (None, "socket"):
                raise PveError(500, f"only root can set '{key}' config for real devices")
            vm_perm("VM.Config.HWType")
        for key in sorted(k for k in keys if re.fullmatch(r"usb\d+", k) and keys[k] is not None):
            vm_perm("VM.Config.HWType")
            device = _props("x," + str(keys[key]))
            if device.get("host"):
                if device["host"].lower() != "spice":
                    raise PveError(500, f"only root can set '{key}' config for real devices")
            elif device.get("mapping"):
                self.require(user, f"/mapping/usb/{device['mapping']}", "Mapping.Use")  # type: ignore[attr-defined]
            else:
                raise PveError(500, "either 'host' or 'mapping' must be set.")
        for key in sorted(k for k in keys if re.fullmatch(r"hostpci\d+", k) and keys[k] is not None):
            device = _props("x," + str(keys[key]))
            if device.get("host"):
                raise PveError(500, f"only root can set '{key}' config for non-mapped devices")
            if not device.get("mapping"):
                raise PveError(500, "either 'host' or 'mapping' must be set.")
            self.require(user, f"/mapping/pci/{device['mapping']}", "Mapping.Use")  # type: ignore[attr-defined]
            vm_perm("VM.Config.HWType")
        for key in sorted(k for k in keys if re.fullmatch(r"net\d+", k)):
            net = _props(keys[key])
            bridge, tag = net.get("bridge"), net.get("tag")
            if bridge:
                path = f"/sdn/zones/localnetwork/{bridge}" + (f"/{tag}" if tag else "")
                if not self.allowed(user, path, "SDN.Use"):
                    raise PveError(403, f"Permission check failed ({path}, SDN.Use)")
        cputype = _cputype(keys.get("cpu"))
        if cputype.startswith("custom-") and cputype != _cputype((existing or {}).get("cpu")):
            self.require(user, "/nodes", "Sys.Audit")  # type: ignore[attr-defined]

    async def _qm_create(self, v: dict[str, Any], user: str) -> Any:
        """create_vm's checks in PVE's order (module docstring); fakepve's own then find nothing new."""
        vmid, pool, storage = int(v["vmid"]), v.get("pool"), v.get("storage")
        params = {k: x for k, x in v.items() if k not in CREATE_ONLY}
        self.need_quorum()  # type: ignore[attr-defined]
        self._qm_check_pool(pool)  # type: ignore[attr-defined]
        if storage:
            self.require(user, f"/storage/{storage}", "Datastore.AllocateSpace")  # type: ignore[attr-defined]
        if not (self.allowed(user, f"/vms/{vmid}", "VM.Allocate") or (pool and self.allowed(user, f"/pool/{pool}", "VM.Allocate"))):
            raise PveError(403, "Permission check failed")
        for key in sorted(params):
            if DRIVE_KEY.match(key):
                self._qm_check_drive(user, vmid, pool, key, params[key], storage)  # type: ignore[attr-defined]
        self._vm_key_check(user, vmid, params, pool)
        return await super()._qm_create(v, user)  # type: ignore[misc]

    async def _config_put(self, request: web.Request) -> Any:
        await self._config_keys_first(request)
        return await super()._config_put(request)  # type: ignore[misc]

    async def _config_post(self, request: web.Request) -> Any:
        await self._config_keys_first(request)
        return await super()._config_post(request)  # type: ignore[misc]

    async def _config_keys_first(self, request: web.Request) -> None:
        from fakepve.server import USER, params

        values = dict(await params(request))
        deletes = {k: None for k in str(values.pop("delete", "") or "").split(",") if k}
        vmid = int(request.match_info["vmid"]) if request.match_info["vmid"].isdigit() else 0
        vm = self.vm(vmid) if vmid else None  # type: ignore[attr-defined]
        self._vm_key_check(request[USER], vmid, {**deletes, **values}, existing=dict(vm.config) if vm is not None else None)
