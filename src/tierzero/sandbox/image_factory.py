"""A Talos Image Factory stand-in (`STANDIN`, "image-factory"): the community build's HTTP API as
siderolabs/image-factory v1.5.0 serves it, on loopback, starting with no schematic registered
(a factory just installed; the public one knows only what someone uploaded to it).

Rules, each with its source (IF = siderolabs/image-factory at tag v1.5.0):
- `POST /schematics` decodes YAML strictly: an unknown field is 400 `yaml: construct errors: ...`;
  a non-empty `owner` is 400 in the community build, accepted by an Enterprise one (and part of
  the ID, the struct's first field; schematic.go Schematic, validate/validateEnterprise 35-55); success is 201 `{"id", "schematic"}` and a repeat
  is 201 with the same ID. Source: IF internal/frontend/http/configuration.go handleSchematicCreate,
  pkg/schematic/schematic.go Unmarshal/validate.
- The ID is sha256 of the schematic re-encoded as go-yaml writes the struct (field order, 4-space
  indent, empty fields omitted). Source: IF pkg/schematic/schematic.go ID/Marshal, schematic_test.go.
- `GET /image/<id>/<version>/<path>`: `.sha256`/`.sha512` and `.sigstore.json` are 402 in the
  community build, before anything else is looked at (IF image.go 45-69); an ID never uploaded is 404 `schematic ID "<id>" not found`;
  a malformed version is 500 `internal server error`; a bad path is 400 `error parsing profile from
  path: invalid profile path: ...`; a version not in `/versions` is 404 `... version X is not
  available`; an extension the version lacks is 400 `... official extension "<n>" is not available
  for Talos version v<ver>`. Source: IF
  internal/frontend/http/image.go handleImage, internal/profile/profile.go ParseFromPath and
  EnhanceFromSchematic, internal/artifacts/manager.go validateTalosVersion.
- `/v2/...`: the installer images' registry (`tierzero.sandbox.factory_registry`).
- `GET /versions` lists the releases ascending; `/version/<v>/extensions/official` the extensions.
  Source: IF internal/frontend/http/meta.go.
- `GET /schematics/<id>` answers the schematic as YAML (`application/yaml`), an unknown ID 404
  `schematic not found`; `GET`/`HEAD /healthz` and `/readyz` answer 200 with no body. Source: IF
  v1.5.0-4 (26b95ca) internal/frontend/http/http.go 193-215, configuration.go handleSchematicGet,
  registry.go handleHealth, http.go handleReady.

An image is not a disk: its bytes are `IMAGE_MAGIC` and a JSON line naming the schematic, Talos
version, platform, arch, format, extensions and kernel arguments (the platform's own, from
siderolabs/talos v1.12.11 platform/<name>/<name>.go KernelArgs, then the schematic's
extraKernelArgs). The sandbox's Proxmox keeps that description with the file it downloaded, and a
VM booting from it runs exactly that Talos (`tierzero.sandbox.talos`).

Option `image_factory_enterprise`: the checksum endpoints answer (an Enterprise factory).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import lzma
import re
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

import yaml

from tierzero.adapters.connections import Endpoint
from tierzero.sandbox import factory_registry
from tierzero.sandbox.context import Handle, SandboxContext, StandIn, Stop
from tierzero.sandbox.http_server import StandInHttpServer

IMAGE_MAGIC = b"TIERZERO-SANDBOX-TALOS-IMAGE\n"
DOCUMENT = "image-factory"

# Releases the stand-in serves, as IF internal/artifacts/versions.go filters the Talos tags: every
# release from MinTalosVersion 1.2.0 (cmd/image-factory/cmd/options.go 822) on, and the alpha,
# beta and rc pre-releases of the newest minor only. The tags: siderolabs/talos, 2026-08-21
# snapshot (the newest patch of each minor; every patch from .0 exists), 1.14 pre-releases.
_PATCHES = {"1.2": 9, "1.3": 7, "1.4": 8, "1.5": 6, "1.6": 8, "1.7": 7, "1.8": 4, "1.9": 6, "1.10": 9, "1.11": 6, "1.12": 11, "1.13": 9}
_NEWEST_PRERELEASES = ("v1.14.0-alpha.0", "v1.14.0-alpha.1", "v1.14.0-alpha.2", "v1.14.0-beta.0", "v1.14.0-beta.1", "v1.14.0-rc.1")
VERSIONS: tuple[str, ...] = tuple(f"v{minor}.{p}" for minor, last in _PATCHES.items() for p in range(last + 1)) + _NEWEST_PRERELEASES

# Official extensions (names as `GET /version/<v>/extensions/official` lists them). Source:
# siderolabs/extensions repository, README "Official extensions".
EXTENSIONS: tuple[str, ...] = (
    "siderolabs/amd-ucode", "siderolabs/btrfs", "siderolabs/drbd", "siderolabs/gvisor", "siderolabs/intel-ucode",
    "siderolabs/iscsi-tools", "siderolabs/nut-client", "siderolabs/qemu-guest-agent", "siderolabs/tailscale",
    "siderolabs/util-linux-tools", "siderolabs/zfs",
)

# KernelArgs() per platform. Source: siderolabs/talos v1.12.11
# internal/app/machined/pkg/runtime/v1alpha1/platform/{nocloud,metal,oracle,openstack}/*.go.
PLATFORM_KERNEL_ARGS: dict[tuple[str, str], tuple[str, ...]] = {
    ("metal", "amd64"): ("console=tty0",),
    ("metal", "arm64"): ("console=ttyAMA0", "console=tty0"),
    ("nocloud", "amd64"): ("console=tty1", "console=ttyS0", "net.ifnames=0"),
    ("nocloud", "arm64"): ("console=tty1", "console=ttyS0", "net.ifnames=0"),
    ("openstack", "amd64"): ("console=tty1", "console=ttyS0", "net.ifnames=0"),
    ("openstack", "arm64"): ("console=tty1", "console=ttyS0", "net.ifnames=0"),
    ("oracle", "amd64"): ("console=tty1", "console=ttyS0", "net.ifnames=0", "talos.dashboard.disabled=1"),
    ("oracle", "arm64"): ("console=tty1", "console=ttyS0", "net.ifnames=0", "talos.dashboard.disabled=1"),
}
MIB = 1024**2
# Disk image size: IF starts every disk profile at DefaultRAWDiskSize (8192 MiB) and takes the
# platform's default profile size where Talos has one. Source: IF internal/profile/profile.go
# ParseFromPath 183-240; siderolabs/talos v1.14.0-rc.1 (IF v1.5.0's go.mod) pkg/imager/profile/
# default.go 15-18 and 44-392 (MinRAWDiskSize 1246 MiB, DefaultRAWDiskSize 8192 MiB).
DISK_SIZE = {**dict.fromkeys(("metal", "akamai", "alibabacloud", "hcloud", "nocloud", "opennebula", "openstack", "scaleway"), 1246 * MIB),
             "exoscale": 10 * 1024 * MIB}
DEFAULT_DISK_SIZE = 8192 * MIB

_DISK = re.compile(r"^(?P<platform>[a-z0-9]+)-(?P<arch>amd64|arm64|x86_64|i386)(?P<sb>-secureboot)?"
                   r"\.(?P<format>raw|qcow2|vhd|ova)(?P<compression>\.xz|\.zst|\.gz|\.tar\.gz)?$")
_ISO = re.compile(r"^(?P<platform>[a-z0-9]+)-(?P<arch>amd64|arm64|x86_64|i386)(?P<sb>-secureboot)?\.iso$")
_SEMVER = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)(-[0-9A-Za-z.-]+)?$")


class FactoryError(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status, self.text = status, text


# ------------------------------------------------------------------ schematics

_FIELDS: dict[str, tuple[str, dict[str, str | None]]] = {
    # go type name, {yaml key: nested type or None}: the decoding struct, in field order.
    "Schematic": ("schematic.Schematic", {"overlay": "Overlay", "customization": "Customization", "owner": None}),
    "Overlay": ("schematic.Overlay", {"image": None, "name": None, "options": None}),
    "Customization": ("schematic.Customization", {
        "embeddedMachineConfiguration": None, "extraKernelArgs": None, "meta": None, "systemExtensions": "SystemExtensions",
        "bootloader": None, "secureboot": "SecureBoot", "diskImage": "DiskImage"}),
    "SystemExtensions": ("schematic.SystemExtensions", {"officialExtensions": None}),
    "SecureBoot": ("schematic.SecureBootCustomization", {"enrollKeys": None, "includeWellKnownCertificates": None}),
    "DiskImage": ("schematic.DiskImage", {"sectorSize": None}),
}


def _check_fields(node: yaml.Node, kind: str, problems: list[str]) -> None:
    if not isinstance(node, yaml.MappingNode):
        return
    go_name, fields = _FIELDS[kind]
    for key, value in node.value:
        name = str(key.value)
        if name not in fields:
            problems.append(f"  line {key.start_mark.line + 1}: field {name} not found in type {go_name}")
        elif fields[name] is not None:
            _check_fields(value, str(fields[name]), problems)


def decode_schematic(body: bytes, *, enterprise: bool = False) -> dict[str, Any]:
    """The schematic a request body holds, or FactoryError(400) as the factory words it."""
    try:
        text = body.decode()
        node = yaml.compose(text)
        data = yaml.safe_load(text) if node is not None else {}
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise FactoryError(400, f"yaml: {exc}") from None
    problems: list[str] = []
    if node is not None:
        _check_fields(node, "Schematic", problems)
    if problems:
        raise FactoryError(400, "yaml: construct errors:\n" + "\n".join(problems))
    if not isinstance(data, dict):
        data = {}
    if data.get("owner") and not enterprise:
        raise FactoryError(400, "owner field is only supported in Enterprise edition")
    return data


def _emit(value: Any, indent: int) -> list[str]:
    """go-yaml's block style with 4-space indentation (sequences indented under their key)."""
    pad = " " * indent
    lines: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, (dict, list)) and item:
                lines.append(f"{pad}{key}:")
                lines += _emit(item, indent + 4)
            else:
                lines.append(f"{pad}{key}: {_flow(item)}")
    else:
        for item in value:
            if isinstance(item, dict) and item:
                inner = _emit(item, indent + 2)
                inner[0] = pad + "- " + inner[0].lstrip()
                lines += inner
            else:
                lines.append(f"{pad}- {_flow(item)}")
    return lines


def _flow(value: Any) -> str:
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        return "[]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    text = str(value)
    plain = yaml.safe_dump(text, width=1 << 30).removesuffix("\n...\n").rstrip("\n")
    return plain if not plain.startswith(("'", '"')) else json.dumps(text)


def canonical(data: dict[str, Any]) -> str:
    """The schematic as the factory re-encodes it before hashing: struct field order, empty
    fields dropped, `customization: {}` when nothing is customised."""
    def pick(raw: Any, kind: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, nested in _FIELDS[kind][1].items():
            value = (raw or {}).get(key) if isinstance(raw, dict) else None
            if nested is not None:
                value = pick(value, nested)
            if value not in (None, "", [], {}, False, 0):
                out[key] = value
        return out

    doc = pick(data, "Schematic")
    ordered: dict[str, Any] = {k: doc[k] for k in ("owner", "overlay") if k in doc}
    ordered["customization"] = doc.get("customization", {})
    return "\n".join(_emit(ordered, 0)) + "\n"


def schematic_id(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# ------------------------------------------------------------------ images

def encode_image(meta: dict[str, Any]) -> bytes:
    return IMAGE_MAGIC + json.dumps(meta, sort_keys=True).encode() + b"\n"


def parse_image(data: bytes) -> dict[str, Any] | None:
    """The description of a (decompressed) sandbox Talos image, or None for any other bytes."""
    if not data.startswith(IMAGE_MAGIC):
        return None
    try:
        meta = json.loads(data[len(IMAGE_MAGIC):].decode())
    except ValueError:
        return None
    return meta if isinstance(meta, dict) else None


def _version_key(tag: str) -> tuple[int, int, int, int]:
    found = _SEMVER.match(tag)
    assert found is not None
    return int(found[1]), int(found[2]), int(found[3]), 0 if found[4] else 1


class ImageFactory:
    """The factory's state: the schematics uploaded so far (ID -> canonical YAML)."""

    def __init__(self, *, enterprise: bool = False, versions: tuple[str, ...] = VERSIONS,
                 extensions: tuple[str, ...] = EXTENSIONS) -> None:
        self.schematics: dict[str, str] = {}
        self.enterprise = enterprise
        self.versions = tuple(sorted(versions, key=_version_key))
        self.extensions = extensions
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self.on_change: Any = None  # called after a new schematic is stored, before the answer

    def create(self, body: bytes) -> tuple[int, dict[str, Any]]:
        text = canonical(decode_schematic(body, enterprise=self.enterprise))
        sid = schematic_id(text)
        with self.lock:
            if sid not in self.schematics:
                self.schematics[sid] = text
                if self.on_change is not None:
                    self.on_change()
        return 201, {"id": sid, "schematic": text}

    def image(self, sid: str, version: str, path: str) -> bytes:
        if path.endswith(".sigstore.json"):  # IF image.go 47-51 and 66-68: a signature (not modelled in enterprise mode)
            if not self.enterprise:
                raise FactoryError(402, "enterprise signing is not enabled: signature endpoint is not available")
            raise FactoryError(501, "sandbox: image signatures are not modelled")
        checksum = next((s for s in (".sha256", ".sha512") if path.endswith(s)), None)
        if checksum and not self.enterprise:
            raise FactoryError(402, "enterprise not enabled: checksum endpoint is not available")
        text = self.schematics.get(sid)
        if text is None:
            raise FactoryError(404, f'schematic ID "{sid}" not found')
        if not _SEMVER.match(version):
            raise FactoryError(500, "internal server error")
        tag = "v" + version.removeprefix("v")
        base = path.removesuffix(checksum or "")
        found = _DISK.match(base) or _ISO.match(base)
        if found is None:
            raise FactoryError(400, f'error parsing profile from path: invalid profile path: "{base}"')
        schematic = yaml.safe_load(text) or {}
        custom = schematic.get("customization") or {}
        extensions = list((custom.get("systemExtensions") or {}).get("officialExtensions") or [])
        if tag not in self.versions:
            where = "error enhancing profile from schematic: error getting official extensions" if extensions else "failed to get kernel"
            raise FactoryError(404, f"{where}: version {tag.removeprefix('v')} is not available")
        for ext in extensions:
            if ext not in self.extensions:
                raise FactoryError(400, f'error enhancing profile from schematic: official extension "{ext}" is not available for Talos version {tag}')
        platform = found["platform"]
        arch = {"x86_64": "amd64", "i386": "amd64"}.get(found["arch"], found["arch"])
        is_iso = base.endswith(".iso")
        fmt = "iso" if is_iso else found["format"]
        meta = {
            "schematic": sid, "version": tag, "platform": platform, "arch": arch, "format": fmt,
            "secureboot": bool(found["sb"]), "extensions": extensions,
            "kernel_args": [*PLATFORM_KERNEL_ARGS.get((platform, arch), ("console=tty0",)), *(custom.get("extraKernelArgs") or [])],
            "virtual_size": DISK_SIZE.get(platform, DEFAULT_DISK_SIZE),
        }
        data = _compress(encode_image(meta), None if is_iso else found["compression"])
        if checksum:
            algo = hashlib.sha256 if checksum == ".sha256" else hashlib.sha512
            return f"{algo(data).hexdigest()}  {base}\n".encode()
        return data


def _compress(data: bytes, how: str | None) -> bytes:
    if how == ".xz":
        return lzma.compress(data)
    if how in (".gz", ".tar.gz"):
        return gzip.compress(data, mtime=0)
    if how == ".zst":
        return b"\x28\xb5\x2f\xfd" + data  # a zstd frame magic in front: no stdlib zstd, and no one here unpacks it
    return data


class _Handler(BaseHTTPRequestHandler):
    server: "ImageFactoryServer"
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, content_type: str, *, head: bool = False, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Server", "image-factory (tierzero sandbox)")
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _error(self, err: FactoryError, head: bool = False) -> None:
        # Go's http.Error: plain text, a trailing newline.
        self._send(err.status, (err.text + "\n").encode(), "text/plain; charset=utf-8", head=head)

    def do_POST(self) -> None:  # noqa: N802
        factory = self.server.factory
        path = urlsplit(self.path).path
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        factory.requests.append(("POST", path))
        if path != "/schematics":
            self._error(FactoryError(404, "404 page not found"))
            return
        try:
            status, doc = factory.create(body)
        except FactoryError as err:
            self._error(err)
            return
        self._send(status, (json.dumps(doc) + "\n").encode(), "application/json")

    def do_HEAD(self) -> None:  # noqa: N802
        self.do_GET(head=True)

    def do_GET(self, head: bool = False) -> None:  # noqa: N802
        factory = self.server.factory
        path = urlsplit(self.path).path
        factory.requests.append(("HEAD" if head else "GET", path))
        parts = [p for p in path.split("/") if p]
        try:
            if path in ("/healthz", "/readyz"):  # 200, no body (IF http.go 193-197, registry.go handleHealth, http.go handleReady)
                self._send(200, b"", "text/plain; charset=utf-8", head=head)
            elif parts == ["versions"]:
                self._send(200, json.dumps(list(factory.versions)).encode(), "text/plain; charset=utf-8", head=head)
            elif len(parts) == 4 and parts[0] == "version" and parts[2:] == ["extensions", "official"]:
                if "v" + parts[1].removeprefix("v") not in factory.versions:
                    raise FactoryError(404, f"version {parts[1].removeprefix('v')} is not available")
                listing = [{"name": n, "ref": f"ghcr.io/{n}:sandbox", "digest": "sha256:" + hashlib.sha256(n.encode()).hexdigest(),
                            "author": "Sidero Labs", "description": n} for n in factory.extensions]
                self._send(200, json.dumps(listing).encode(), "application/json", head=head)
            elif len(parts) == 2 and parts[0] == "schematics" and not head:  # GET only (IF http.go 215, configuration.go handleSchematicGet)
                text = factory.schematics.get(parts[1])
                if text is None:
                    raise FactoryError(404, "schematic not found")
                self._send(200, text.encode(), "application/yaml", head=head)
            elif parts[:1] == ["v2"]:
                try:
                    status, body, kind = factory_registry.manifest(factory, parts[1:])
                except factory_registry.RegistryError as err:
                    raise FactoryError(err.status, err.text) from None
                self._send(status, body, kind, head=head)
            elif len(parts) == 4 and parts[0] == "image":
                data = factory.image(parts[1], parts[2], parts[3])
                self._send(200, data, "application/octet-stream", head=head,
                           extra={"Content-Disposition": f'attachment; filename="{parts[3]}"'})
            else:
                raise FactoryError(404, "404 page not found")
        except FactoryError as err:
            self._error(err, head=head)


class ImageFactoryServer(StandInHttpServer):
    def __init__(self, factory: ImageFactory) -> None:
        super().__init__(_Handler, name="image-factory")
        self.factory = factory

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def endpoint(self) -> Endpoint:
        return Endpoint(self.host, self.port, scheme="http")


def start_image_factory(factory: ImageFactory | None = None) -> ImageFactoryServer:
    server = ImageFactoryServer(factory or ImageFactory())
    server.start_serving()
    return server


SERVER: Handle[ImageFactoryServer] = Handle("image-factory")


def _start(box: SandboxContext) -> Stop:
    """The factory at ("http", "image-factory"); its schematics are part of the world (the real
    factory keeps what was uploaded to it)."""
    factory = ImageFactory(enterprise=box.options.image_factory_enterprise)
    if box.world is not None:
        document = box.world.file(DOCUMENT)
        saved = document.load() or {}
        factory.schematics.update(saved.get("schematics") or {})
        factory.on_change = lambda: document.save({"schematics": dict(sorted(factory.schematics.items()))})
    server = box.put(SERVER, start_image_factory(factory))
    box.connections.add("http", "image-factory", server.endpoint())
    return server.stop


STANDIN = StandIn("image-factory", _start)
