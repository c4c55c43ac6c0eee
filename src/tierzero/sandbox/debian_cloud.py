"""A stand-in for Debian's cloud image site (cloud.debian.org/images/cloud), as ("http", "debian-cloud-images").

Rules, each with its source:
- `/<suite>/latest/` holds `debian-<release>-<variant>-<arch>.qcow2` for bookworm (12) and trixie (13), variants
  genericcloud and generic, and a `SHA512SUMS` listing each file as sha512sum(1) writes it (`<hex>  <name>`).
  Sources: cloud.debian.org/images/cloud directory listings as documented on the Debian wiki "Cloud";
  salsa.debian.org/cloud-team/debian-cloud-images (image types).
- Anything else is 404.
- `SHA512SUMS.sign`: served only when a test gives the stand-in a signer (`DebianCloudSite.signer`, bytes ->
  detached signature). Whether every real cloud image directory carries one was not verified, so the stock
  site serves none, and tierzero without a keyring does not ask for one.
The images are not bootable disks: a QCOW2 header magic (qemu docs/interop/qcow2.txt) followed by a line naming
the image, padded to 64 KiB, so uploads stay fast. The hosts that "boot" it are `tierzero.sandbox.pve_hosts`
(a Debian arm64 cloud image after boot, `tierzero.sandbox.pve_hosts.cloud_image`). `tampered` names files whose
bytes no longer match their SHA512SUMS line (a mirror caught mid-update, or worse).
"""

from __future__ import annotations

import hashlib
from http.server import BaseHTTPRequestHandler
from typing import Callable

from tierzero.adapters.connections import Endpoint
from tierzero.sandbox.context import Handle, SandboxContext, StandIn, Stop
from tierzero.sandbox.http_server import StandInHttpServer

RELEASES = {"bookworm": 12, "trixie": 13}
VARIANTS = ("genericcloud", "generic")
QCOW2_MAGIC = b"QFI\xfb\x00\x00\x00\x03"  # magic, version 3
IMAGE_BYTES = 64 * 1024


def image_bytes(suite: str, name: str) -> bytes:
    body = QCOW2_MAGIC + f"\ntierzero sandbox: {name} ({suite}), not a bootable disk\n".encode()
    return body.ljust(IMAGE_BYTES, b"\0")


class DebianCloudSite:
    """What the site serves: path under the base URL -> bytes."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.signer: Callable[[bytes], bytes] | None = None
        self.tampered: set[str] = set()
        self.gets: list[str] = []
        for suite, release in RELEASES.items():
            sums = []
            for variant in VARIANTS:
                name = f"debian-{release}-{variant}-arm64.qcow2"
                data = image_bytes(suite, name)
                self.files[f"/{suite}/latest/{name}"] = data
                sums.append(f"{hashlib.sha512(data).hexdigest()}  {name}\n")
            self.files[f"/{suite}/latest/SHA512SUMS"] = "".join(sums).encode()

    def get(self, path: str) -> bytes | None:
        self.gets.append(path)
        if path.endswith("/SHA512SUMS.sign"):
            sums = self.files.get(path.removesuffix(".sign"))
            return self.signer(sums) if self.signer is not None and sums is not None else None
        data = self.files.get(path)
        if data is not None and path.rsplit("/", 1)[-1] in self.tampered:
            return data[:-1] + bytes([data[-1] ^ 1])
        return data


class _Handler(BaseHTTPRequestHandler):
    server: "DebianCloudServer"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the stdlib's signature)
        pass

    def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
        data = self.server.site.get(self.path.split("?", 1)[0])
        if data is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class DebianCloudServer(StandInHttpServer):
    def __init__(self, site: DebianCloudSite) -> None:
        super().__init__(_Handler, name="debian-cloud-standin")
        self.site = site

    def start(self) -> "DebianCloudServer":
        self.start_serving()
        return self

    def endpoint(self) -> Endpoint:
        return Endpoint(self.host, self.port, scheme="http")


SERVER: Handle[DebianCloudServer] = Handle("debian-cloud-images")


def _start(box: SandboxContext) -> Stop:
    if box.spec.oci is None:
        return lambda: None
    server = box.put(SERVER, DebianCloudServer(DebianCloudSite()).start())
    box.connections.add("http", "debian-cloud-images", server.endpoint())
    return server.stop


STANDIN = StandIn("debian-cloud-images", _start)
