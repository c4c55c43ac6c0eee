"""Debian's cloud images over HTTPS: the `SHA512SUMS` of an image directory, its signature checked with
`gpgv` against a keyring the user gives, and the image itself streamed to disk and checked against the sums.

    source = DebianImages(base_url)
    sums = source.sums(image)                                  # SHA512SUMS, parsed
    checked = source.verify_signature(image, keyring_path)     # gpgv, or a RefusedError
    path = source.download(image, dest, sums[image.file_name]) # whole and matching, or an error

Facts: sha512sum(1) line format (`<hex>  <name>`); `gpgv [--keyring FILE] SIGNATURE DATA` exits 0 only for a
good signature by a key in the keyring, which must be a binary keyring (`gpg --export > FILE`), not an
armoured one (gpgv(1), GnuPG 2.2). Where the images are: ("http", "debian-cloud-images") in `Connections` when
set (the sandbox's stand-in), else the spec's mirror. Every request is reported (`tierzero.adapters.calls`);
library exceptions become tierzero errors."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import requests

from tierzero.adapters import calls
from tierzero.adapters.connections import Connections, UnknownEndpoint
from tierzero.adapters.errors import from_requests, from_subprocess
from tierzero.errors import OperationError, RefusedError
from tierzero.render.debian_image import DebianImage, parse_sha512sums

ENDPOINT = ("http", "debian-cloud-images")


def images_base(connections: Connections, mirror: str) -> str:
    """The mirror to fetch from here: the sandbox's stand-in when there is one, else the spec's."""
    try:
        return connections.endpoint(*ENDPOINT).url.rstrip("/")
    except UnknownEndpoint:
        return mirror.rstrip("/")


def file_sha512(path: Path) -> str:
    """Hex SHA512 of the file at PATH, read in chunks (constant memory)."""
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha512").hexdigest()


class DebianImages:
    """One mirror of cloud.debian.org/images/cloud (`base_url` replaces the image's own mirror)."""

    def __init__(self, base_url: str, *, timeout: float = 60.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        self.sums_text = b""  # the SHA512SUMS bytes `sums()` read: the very bytes the signature is checked on

    def _url(self, image: DebianImage, url: str) -> str:
        return self.base_url + url.removeprefix(image.mirror.rstrip("/"))

    def _get(self, url: str, what: str) -> requests.Response:
        calls.sent("http", urlsplit(url).netloc, calls.http_request("GET", url))
        try:
            return self.session.get(url, timeout=self.timeout)
        except requests.RequestException as exc:
            raise from_requests(exc, f"Debian cloud images: {what}") from None

    def sums(self, image: DebianImage) -> dict[str, str]:
        """The directory's SHA512SUMS; an OperationError when it is missing or does not list the image."""
        url = self._url(image, image.sums_url)
        answer = self._get(url, "read SHA512SUMS")
        if answer.status_code != 200:
            raise OperationError(f"{url} answered HTTP {answer.status_code}",
                                 hint="check cloud.oci.host_image.mirror and that the Debian release is published there")
        sums = parse_sha512sums(answer.text)
        if image.file_name not in sums:
            raise OperationError(f"{url} lists no {image.file_name} ({len(sums)} files listed)",
                                 hint="check cloud.oci.host_image.variant and the Debian release (hypervisors.proxmox.install.version)")
        self.sums_text = answer.content
        return sums

    def verify_signature(self, image: DebianImage, keyring: Path) -> str:
        """`gpgv --keyring KEYRING SHA512SUMS.sign SHA512SUMS` on the sums `sums()` read. Returns gpgv's report
        line; a RefusedError when the signature is missing or not good (nothing is downloaded then)."""
        url = self._url(image, image.signature_url)
        answer = self._get(url, "read SHA512SUMS.sign")
        if answer.status_code != 200:
            raise RefusedError(f"{url} answered HTTP {answer.status_code}: no signature to check SHA512SUMS against "
                               "the keyring cloud.oci.host_image.keyring names",
                               hint="remove cloud.oci.host_image.keyring to rely on the checksum over HTTPS alone, or use a mirror that serves the signature")
        gpgv = shutil.which("gpgv")
        if gpgv is None:
            raise OperationError("checking the Debian image's signature needs `gpgv`, which is not installed",
                                 hint="install it (Debian/Ubuntu: apt-get install gpgv; macOS: brew install gnupg)")
        with tempfile.TemporaryDirectory(prefix="tierzero-gpgv-") as tmp:
            data, sig = Path(tmp) / "SHA512SUMS", Path(tmp) / "SHA512SUMS.sign"
            data.write_bytes(self.sums_text)
            sig.write_bytes(answer.content)
            try:
                done = subprocess.run([gpgv, "--keyring", str(keyring.resolve()), str(sig), str(data)],
                                      capture_output=True, text=True, timeout=60)
            except (subprocess.SubprocessError, OSError) as exc:
                raise from_subprocess(exc, "gpgv", "checking SHA512SUMS.sign") from exc
        report = " ".join((done.stderr or "").split())
        if done.returncode != 0:
            raise RefusedError(f"the signature of {image.sums_url} is not good by a key in {keyring}: {report[:400]}",
                               hint="check the keyring is the Debian cloud team's binary keyring (gpg --export KEY > file); nothing was downloaded")
        return report

    def download(self, image: DebianImage, dest: Path, sha512: str) -> Path:
        """The image streamed into `dest` (as dest.part, renamed only when its sha512 is `sha512`). A file
        already at `dest` with that sha512 is kept as it is."""
        if dest.is_file() and file_sha512(dest) == sha512:
            return dest
        url = self._url(image, image.image_url)
        tmp = dest.with_suffix(dest.suffix + ".part")
        digest = hashlib.sha512()
        calls.sent("http", urlsplit(url).netloc, calls.http_request("GET", url))
        try:
            with self.session.get(url, timeout=self.timeout, stream=True) as answer:
                if answer.status_code != 200:
                    raise OperationError(f"{url} answered HTTP {answer.status_code}", hint="check cloud.oci.host_image.mirror, then run again")
                dest.parent.mkdir(parents=True, exist_ok=True)
                with tmp.open("wb") as out:
                    for chunk in answer.iter_content(1024 * 1024):
                        digest.update(chunk)
                        out.write(chunk)
        except requests.RequestException as exc:
            tmp.unlink(missing_ok=True)
            raise from_requests(exc, f"Debian cloud images: download {image.file_name}") from None
        if digest.hexdigest() != sha512:
            tmp.unlink(missing_ok=True)
            raise RefusedError(f"{image.file_name} from {url} does not match its SHA512SUMS line (got {digest.hexdigest()[:16]}…, "
                               f"listed {sha512[:16]}…); the file was deleted and nothing was uploaded",
                               hint="run again (a download cut short or a mirror mid-update); if it persists, use another mirror")
        tmp.replace(dest)
        return dest

    def close(self) -> None:
        self.session.close()
