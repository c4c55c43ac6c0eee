"""Storage on the sandbox's Proxmox VE as a fresh install has it, and what its API refuses there:
rules fakepve 0.5.0 lacks, as a mixin in front of it.

- The storages the installer writes (`stock_storages`). Source: proxmox/pve-installer 9.1.0
  Proxmox/Install/StorageConfig.pm get_lvm_thin_config 50-62 / get_zfs_config 17-34 (`import` in
  `local` since installer 9.0.7, commit ec1d5ee2; no layout has `snippets`).
- download-url checks, in PVE's order: the permission rule (Datastore.AllocateTemplate, and
  Sys.Audit+Sys.Modify on / or Sys.AccessNetwork on the node), the schema, the storage (enabled,
  file based, content type configured), the file name (normalised; iso/img, tar[.gz|xz|zst|bz2],
  or import's ova/qcow2/raw/vmdk); then in the task: decompression (iso only; gz/lzo/zst/bz2, not
  xz), an existing file (kept with a matching checksum, refused otherwise), the download, the
  checksum, the image check. Source: proxmox/pve-storage 9.1.0 src/PVE/API2/Storage/Status.pm
  download_url 731-906, src/PVE/Storage.pm normalize_content_filename 2483-2491 and
  decompressor_info 1751-1790; proxmox/pve-common 9.0.15 src/PVE/Tools.pm download_file_from_url
  1782-1857 ("download failed: " and wget's last stderr line, run_command errmsg 545-582; the image
  check is file_size_info untrusted: "failed to verify file: failed to query file information with
  qemu-img", pve-storage 9.1.0 Plugin.pm 1239-1241, API2/Storage/Status.pm 877-889).
- `import-from` is consumed by create: a new volume holding the source's contents, at the source's
  size; the source must be an `images` or `import` volume the caller may read. Source:
  proxmox/qemu-server 9.1.0 src/PVE/API2/Qemu.pm check_storage_access 161-280 and create_disks
  497-566; pve-storage 9.1.0 src/PVE/Storage.pm check_volume_access 619-656. A missing `import`
  source fails the task "unable to create VM <vmid> - failed to stat '<path>'" (create_disks checks the untrusted file with
  file_size_info, pve-storage 9.1.0 Plugin.pm 1201-1207); for a missing `images` source the
  message is not confirmed from the source, it is worded like its neighbours.
- A cloud-init drive is the volume `vm-<vmid>-cloudinit` (`.qcow2` on a directory storage).
  Source: qemu-server 9.1.0 src/PVE/API2/Qemu.pm 452-480.
- An OS template that is not on the storage fails the container create task "unable to create CT
  <vmid> - can't find file '<volid>'": the API checks only access, the task's restore_archive
  resolves the file. Source: proxmox/pve-container 6.0.18 src/PVE/API2/LXC.pm 336-338 and 413,
  625; src/PVE/LXC/Create.pm restore_archive 53; pve-storage 9.1.0 src/PVE/Storage.pm
  abs_filesystem_path 784.
- A storage without `shared` is each node's own: a file downloaded to `local` on pve1 is not on
  pve2 (`node_volumes`; fakepve keeps one content list per storage). Source: pve-docs 9.1.3
  pvesm.adoc ("shared" flag; local storages are per node).
"""

from __future__ import annotations

import asyncio
import bz2
import contextvars
import gzip
import hashlib
import re
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from fakepve.model import PveError, TaskError
from fakepve.routing import die, param_error, split_list
from fakepve.storage import _is_file

from tierzero.sandbox.image_factory import parse_image

GIB = 1024**3
# Where each content type lives under a directory storage. Source: pve-storage 9.1.0
# src/PVE/Storage/Plugin.pm lines 838-846.
SUBDIR = {"images": "images", "iso": "template/iso", "vztmpl": "template/cache", "backup": "dump",
          "snippets": "snippets", "import": "import", "rootdir": "private"}
_ISO_RE = re.compile(r"^[^/]+\.(iso|img)$", re.I)
_VZTMPL_RE = re.compile(r"^[^/]+\.tar(\.(gz|xz|zst|bz2))?$", re.I)
_IMPORT_RE = re.compile(r"^[a-zA-Z0-9\-.+=_]+\.(ova|qcow2|raw|vmdk)$")
DECOMPRESSORS = ("gz", "lzo", "zst", "bz2")
# The node a request (and the tasks it starts) is about: whose local storages it sees.
CURRENT_NODE: contextvars.ContextVar[str | None] = contextvars.ContextVar("sandbox_pve_node", default=None)


def stock_storages(layout: str = "lvmthin") -> dict[str, dict[str, Any]]:
    """storage.cfg as the PVE 9.1 installer writes it (plus fakepve's own state keys)."""
    local = {"type": "dir", "active": 1, "path": "/var/lib/vz", "content": "iso,vztmpl,backup,import",
             "files": set(), "volumes": {}, "avail": 60 * GIB}
    if layout == "zfs":
        data = {"type": "zfspool", "active": 1, "pool": "rpool/data", "sparse": 1, "content": "images,rootdir",
                "files": set(), "volumes": {}}
        return {"local": local, "local-zfs": data}
    thin = {"type": "lvmthin", "active": 1, "thinpool": "data", "vgname": "pve", "content": "rootdir,images",
            "files": set(), "volumes": {}}
    return {"local": local, "local-lvm": thin}


def normalize_filename(name: str) -> str:
    """PVE::Storage::normalize_content_filename: the last path part, odd characters as `_`."""
    name = re.split(r"[/\\]", name)[-1]
    return re.sub(r"[^a-zA-Z0-9_.-]", "_", name)


def _decompress(data: bytes, how: str) -> bytes:
    if how == "gz":
        return gzip.decompress(data)
    if how == "bz2":
        return bz2.decompress(data)
    if how == "zst" and data.startswith(b"\x28\xb5\x2f\xfd"):
        return data[4:]  # the image factory stand-in's zstd marker
    raise ValueError(f"cannot decompress {how} data here")


class StorageRules:
    """Mixin for FakePve (before it in the MRO)."""

    storages: dict[str, dict[str, Any]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[call-arg]
        self.storages = stock_storages()
        # Files on node-local storages: storage -> node -> volume name -> volume.
        self.node_volumes: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
        # How the hosts fetch a URL: url -> bytes, or raises with the reason (wget's).
        self.fetch_url: Callable[[str], bytes] | None = None

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        token = CURRENT_NODE.set(request.match_info.get("node"))
        try:
            return await super()._middleware(request, handler)  # type: ignore[misc, no-any-return]
        finally:
            CURRENT_NODE.reset(token)

    def node_local(self, sid: str) -> bool:
        store = self.storages.get(sid)
        return store is not None and _is_file(store) and not store.get("shared")

    def local_volumes(self, sid: str, node: str | None = None) -> dict[str, dict[str, Any]]:
        node = node or CURRENT_NODE.get() or ""
        return self.node_volumes.setdefault(sid, {}).setdefault(node, {})

    def _volumes(self, sid: str) -> dict[str, Any]:
        out = super()._volumes(sid)  # type: ignore[misc]
        if self.node_local(sid) and CURRENT_NODE.get():
            out = {**out, **self.local_volumes(sid)}
        return out

    # ------------------------------------------------------------ download-url

    def volume_path(self, sid: str, vtype: str, name: str) -> str:
        base = self.storages[sid].get("path") or "/var/lib/vz"
        return f"{base}/{SUBDIR.get(vtype, vtype)}/{name}"

    async def _download_url(self, request: Any) -> Any:
        from fakepve.server import API, USER, ok, params

        node, sid, user = request.match_info["node"], request.match_info["storage"], request[USER]
        raw = dict(await params(request))
        info = self.resolve(request, API).methods["POST"]  # type: ignore[attr-defined]
        self.check_permissions(user, info.get("permissions"), {**raw, "node": node, "storage": sid})  # type: ignore[attr-defined]
        # `compression`'s enum is an undefined Perl variable in PVE 9.1 (apidata: "enum": null), so any
        # string passes the schema; fakepve's validator cannot take a null enum, so it is left out there.
        compression = raw.pop("compression", None)
        p = self._verify(request, raw)  # type: ignore[attr-defined]
        store = self._check_enabled(sid, node)  # type: ignore[attr-defined]
        if not _is_file(store):
            raise die(f"can't upload to storage type '{store.get('type')}', not a file based storage!")
        content = p["content"]
        if content not in split_list(store.get("content")):
            raise die(f"storage '{sid}' is not configured for content-type '{content}'")
        filename = normalize_filename(str(p["filename"]))
        if content == "iso" and not _ISO_RE.match(filename):
            raise param_error(filename="wrong file extension")
        if content == "vztmpl" and not _VZTMPL_RE.match(filename):
            raise param_error(filename="wrong file extension")
        if content == "import" and not _IMPORT_RE.match(filename):
            raise param_error(filename="invalid filename or wrong extension")
        url = str(p["url"])
        checksum, algorithm = p.get("checksum"), p.get("checksum-algorithm")
        path = self.volume_path(sid, content, filename)

        async def body() -> str:
            if compression:
                if content != "iso":
                    raise TaskError(f"decompression not supported for {content}")
                if compression not in DECOMPRESSORS:
                    raise TaskError("no decompression method found")
            volname = f"{content}/{filename}"
            existing = self._volumes(sid).get(volname)
            if existing is not None:
                if checksum:
                    have = existing.get("checksums", {}).get(algorithm)
                    if have == str(checksum).lower():
                        return "OK, got correct file already, no need to download"
                    raise TaskError(f"checksum mismatch: got '{have}' != expect '{checksum}', aborting")
                raise TaskError(f"refusing to override existing file '{path}'")
            if self.fetch_url is None:
                raise TaskError(f"download failed: no route to {url}")
            try:
                data = await asyncio.to_thread(self.fetch_url, url)
            except Exception as exc:  # noqa: BLE001 - wget's failure, whatever it was
                raise TaskError(f"download failed: {wget_error(exc)}") from None
            if checksum:
                got = hashlib.new(str(algorithm), data).hexdigest()
                if got != str(checksum).lower():
                    raise TaskError(f"checksum mismatch: got '{got}' != expect '{checksum}'")
            if compression:
                try:
                    data = _decompress(data, str(compression))
                except (ValueError, OSError, EOFError) as exc:
                    raise TaskError(f"failed to decompress {path}: {exc}") from None
            meta = parse_image(data)
            fmt = filename.rsplit(".", 1)[-1].lower()
            if content == "import" and fmt != "raw" and (meta is None or meta.get("format") != fmt):
                raise TaskError("failed to verify file: failed to query file information with qemu-img")
            self._store_download(sid, content, filename, data, meta)
            return f"downloaded {len(data)} bytes to {path}"

        return ok(await self.task(node, "download", filename, user, body,  # type: ignore[attr-defined]
                                  log=[f"downloading {url} to {path}"]))

    def _store_download(self, sid: str, content: str, filename: str, data: bytes, meta: dict[str, Any] | None) -> None:
        store = self.storages[sid]
        if len(data) > store.get("avail", float("inf")):
            raise TaskError(f"unable to write to storage '{sid}': No space left on device")
        vol: dict[str, Any] = {"content": content, "size": len(data), "ctime": int(time.time()),
                               "format": "iso" if content == "iso" else filename.rsplit(".", 1)[-1],
                               "checksums": {a: hashlib.new(a, data).hexdigest() for a in ("md5", "sha1", "sha256", "sha512")}}
        if meta is not None:
            vol["image"] = meta
        target = self.local_volumes(sid) if self.node_local(sid) else store.setdefault("volumes", {})
        if content == "iso" and not self.node_local(sid):
            store["files"].add(filename)
        target[f"{content}/{filename}"] = vol
        if "avail" in store:
            store["avail"] -= len(data)

    # ------------------------------------------------------------ VM disks

    def _qm_check_drive(self, user: str, vmid: int, pool: Any, key: str, value: Any, default: Any) -> None:
        super()._qm_check_drive(user, vmid, pool, key, value, default)  # type: ignore[misc]
        from fakepve.qemu import split_drive

        _volume, props = split_drive(value)
        source = props.get("import-from")
        if not source:
            return
        if source.startswith("/"):
            if user != "root@pam":
                raise die("Only root can pass arbitrary filesystem paths. at /usr/share/perl5/PVE/Storage.pm line 651.")
            return
        sid, _, name = source.partition(":")
        store = self._store(sid)  # type: ignore[attr-defined]
        vtype, owner, _fmt = self._parse_volname(store, name)  # type: ignore[attr-defined]
        if vtype not in ("images", "import"):
            raise param_error(**{key: f"{source} has wrong type '{vtype}' - needs to be 'images' or 'import'"})
        self._check_access(user, sid, vtype, owner, source)  # type: ignore[attr-defined]

    def _qm_new_drive(self, vmid: int, key: str, value: Any, default: Any) -> Any:
        from fakepve.lxc import format_size
        from fakepve.qemu import NEW_DISK, join_drive, split_drive

        volume, props = split_drive(value)
        props = dict(props)
        if volume.endswith(":cloudinit") or volume == "cloudinit":
            sid = volume.partition(":")[0] if ":" in volume else default
            store = self.storages[sid]
            name = f"vm-{vmid}-cloudinit" + (".qcow2" if _is_file(store) else "")
            fmt = "qcow2" if _is_file(store) else "raw"
            volname, _ = self._volume_name(store, vmid, fmt, name)  # type: ignore[attr-defined]
            store.setdefault("volumes", {})[volname] = {"content": "images", "format": fmt, "size": 4 * 1024**2,
                                                        "vmid": vmid, "ctime": int(time.time())}
            props.pop("format", None)
            props["media"] = "cdrom"
            return join_drive(f"{sid}:{volname}", props), [f"{sid}:{volname}"]
        source = props.pop("import-from", None)
        if source and NEW_DISK.match(volume) and not source.startswith("/"):
            sid, _, name = source.partition(":")
            src = self._volumes(sid).get(name)  # type: ignore[attr-defined]
            if src is None and name.startswith("import/"):  # untrusted: file_size_info stats it first
                raise TaskError(f"failed to stat '{self.storages[sid].get('path') or '/var/lib/vz'}/{name}'")
            if src is None:
                raise TaskError(f"cannot import from '{source}' - volume does not exist")
            meta = src.get("image")
            size = int((meta or {}).get("virtual_size") or src.get("size") or 0)
            target = NEW_DISK.match(volume).group(1) or default  # type: ignore[union-attr]
            volid, _fmt = self._qm_alloc(target, vmid, props.pop("format", None), size)  # type: ignore[attr-defined]
            if meta is not None:
                self._qm_volume(volid)["image"] = dict(meta)  # type: ignore[attr-defined]
            props["size"] = format_size(size)
            return join_drive(volid, props), [volid]
        return super()._qm_new_drive(vmid, key, value, default)  # type: ignore[misc]

    async def task(self, node: str, ttype: str, tid: Any, user: str, body: Callable[[], Any], vm: Any = None,
                   lock: bool = True, log: Any = ()) -> str:
        """A container create whose template is missing ends as PVE's does (module docstring)."""
        if ttype != "vzcreate":
            return await super().task(node, ttype, tid, user, body, vm=vm, lock=lock, log=log)  # type: ignore[misc]

        async def created() -> Any:
            try:
                return await body()
            except TaskError as err:
                missing = re.fullmatch(r"(unable to create CT \S+ - )volume '(.+)' does not exist", str(err))  # fakepve's wording
                if missing:
                    raise TaskError(f"{missing.group(1)}can't find file '{missing.group(2)}'") from None
                raise

        return await super().task(node, ttype, tid, user, created, vm=vm, lock=lock, log=log)  # type: ignore[misc]

    def volume_exists(self, volid: Any) -> bool | None:
        """A template that is not on a (known, file-based) storage does not exist."""
        sid, colon, volname = str(volid).partition(":")
        if colon and sid in self.storages and _is_file(self.storages[sid]):
            return volname in self._volumes(sid)  # type: ignore[attr-defined]
        return super().volume_exists(volid)  # type: ignore[misc]


class HttpStatus(OSError):
    """An HTTP error answer a host's download got: its status, reason phrase and body."""

    def __init__(self, code: int, reason: str, body: str) -> None:
        super().__init__(f"{code} {reason}: {body}")
        self.code, self.reason, self.body = code, reason, body


def wget_error(exc: BaseException) -> str:
    """wget's last stderr line for a failed download: an HTTP error answer is "<date> <time> ERROR
    <code>: <reason>." (GNU wget src/http.c, "%s ERROR %d: %s.\n" with datetime_str), not the body."""
    if isinstance(exc, HttpStatus):
        return f"{time.strftime('%Y-%m-%d %H:%M:%S')} ERROR {exc.code}: {exc.reason}."
    return str(exc)


__all__ = ["StorageRules", "normalize_filename", "stock_storages", "PveError"]
