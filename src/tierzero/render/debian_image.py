"""Which Debian cloud image the Proxmox VE hosts on A1 instances boot, and how OCI imports it (pure data).

OCI offers no Debian platform image, and the arm64 Proxmox VE port (PXVIRT) installs on Debian 12/13 arm64
(jiangcuo/Pxvirt-docs en/installfromdebian.md), so tierzero imports Debian's own cloud image as a custom image.

Facts, with their sources:
- Debian publishes its cloud images at `https://cloud.debian.org/images/cloud/<suite>/latest/`, named
  `debian-<release>-<variant>-<arch>.qcow2`, with a `SHA512SUMS` file (`<hex>  <file name>` lines) in the same
  directory; `genericcloud` is `generic` without the drivers for physical hardware (Debian wiki "Cloud";
  salsa.debian.org/cloud-team/debian-cloud-images README "Image types"). Release 12 is bookworm, 13 trixie.
- Checksum files of Debian images are signed in `SHA512SUMS.sign` beside them (debian.org/CD/verify). Which key
  signs the cloud images' sums, and whether every cloud image directory carries a `.sign`, was not verified
  here: tierzero verifies the signature with `gpgv` only against a keyring the user gives
  (cloud.oci.host_image.keyring), and says plainly when it did not.
- Arm64 Debian images boot through UEFI only; OCI imports a QCOW2 for Ampere A1 with firmware UEFI_64, launch
  mode PARAVIRTUALIZED and shape compatibility VM.Standard.A1.Flex added to the image (Oracle Compute docs,
  "Importing Custom Linux-Based Images" and "Bring Your Own Image"; the same settings the Talos v1.13 docs for
  Oracle give its arm64 QCOW2, `tierzero.render.oci_image`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from tierzero.render.oci_image import A1_SHAPE

DEBIAN_RELEASES = {"bookworm": 12, "trixie": 13}
OFFICIAL_MIRROR = "https://cloud.debian.org/images/cloud"
Variant = Literal["genericcloud", "generic"]
_SUM_LINE = re.compile(r"^([0-9a-f]{128})\s+\*?(\S+)\s*$")


@dataclass(frozen=True)
class DebianImage:
    """One Debian cloud image: where it is published and what OCI is told when it is imported."""

    suite: str  # bookworm | trixie
    variant: Variant
    mirror: str = OFFICIAL_MIRROR
    arch: str = "arm64"

    @property
    def release(self) -> int:
        return DEBIAN_RELEASES[self.suite]

    @property
    def file_name(self) -> str:
        return f"debian-{self.release}-{self.variant}-{self.arch}.qcow2"

    @property
    def directory(self) -> str:
        return f"{self.mirror.rstrip('/')}/{self.suite}/latest"

    @property
    def image_url(self) -> str:
        return f"{self.directory}/{self.file_name}"

    @property
    def sums_url(self) -> str:
        return f"{self.directory}/SHA512SUMS"

    @property
    def signature_url(self) -> str:
        return f"{self.sums_url}.sign"

    @property
    def custom_image_name(self) -> str:
        """The custom image's display name and the object's stem. One per release, variant and arch: a later
        deploy reuses the image it finds under this name even after `latest` moved on (each new build would
        otherwise cost another custom image and another upload), and the hosts never boot it again anyway."""
        return f"tierzero-debian-{self.release}-{self.variant}-{self.arch}"

    # How OCI imports it (see the module docstring).
    source_format: str = "QCOW2"
    firmware: str = "UEFI_64"
    launch_mode: str = "PARAVIRTUALIZED"
    shapes: tuple[str, ...] = (A1_SHAPE,)

    def describe(self) -> str:
        return (f"Debian {self.release} ({self.suite}) {self.variant} {self.arch} cloud image from {self.directory}, "
                f"imported as {self.source_format} with {self.firmware} firmware, launch mode {self.launch_mode}, "
                f"shapes {', '.join(self.shapes)}")


def debian_image(suite: str, variant: Variant = "genericcloud", mirror: str = OFFICIAL_MIRROR) -> DebianImage:
    if suite not in DEBIAN_RELEASES:
        raise ValueError(f"no Debian cloud image is known for suite {suite!r} (known: {', '.join(DEBIAN_RELEASES)})")
    return DebianImage(suite, variant, mirror)


def parse_sha512sums(text: str) -> dict[str, str]:
    """`SHA512SUMS` as sha512sum(1) writes it: file name -> lowercase hex digest. Lines that are not a sum
    (an empty line, a PGP armour line of a clearsigned file) are skipped."""
    sums: dict[str, str] = {}
    for line in text.splitlines():
        found = _SUM_LINE.match(line.strip())
        if found:
            sums[found.group(2)] = found.group(1)
    return sums


def host_image_changes(spec: Any) -> list[str]:
    """What deploy does about the hosts' image, in words (`tierzero plan`)."""
    oci = spec.oci
    if oci is None or not spec.has_proxmox or not any(n.instance for n in spec.proxmox.nodes):
        return []
    if oci.host_image.image_ocid:
        return [f"Proxmox VE hosts: boot your image {oci.host_image.image_ocid} (nothing is downloaded, uploaded or imported)"]
    image = debian_image(spec.proxmox.install.suite, oci.host_image.variant, oci.host_image.mirror)
    check = (f"its SHA512SUMS.sign checked with gpgv against {oci.host_image.keyring}" if oci.host_image.keyring
             else "the SHA512SUMS signature is NOT checked (give cloud.oci.host_image.keyring to check it)")
    return [f"Proxmox VE hosts: an image named {image.custom_image_name} is reused when the compartment has one; else the Limits "
            "API is asked first (custom-image-count must be above 0: it is 0 on Always-Free-only accounts)",
            f"Proxmox VE hosts: {image.describe()}; checked against SHA512SUMS, {check}",
            f"Proxmox VE hosts: uploaded to bucket {oci.image_bucket} (an interrupted upload resumes), imported, then the object deleted"]
