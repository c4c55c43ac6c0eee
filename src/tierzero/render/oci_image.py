"""How a Talos release is brought onto OCI as a custom image (pure data: `image_recipe(talos_version)`).

What Talos documents for Oracle Cloud, by release (sources: siderolabs/docs public/talos/<v>/…/oracle.mdx;
siderolabs/talos pkg/machinery/platforms/platforms.go):
- Image Factory artifact: `oracle-<arch>.raw.xz` up to v1.12.1, `oracle-<arch>.qcow2` from v1.12.2 / v1.13.0
  (talos commit cf70f05fa "fix: oracle platform file format", backported as 30da0bc19).
- Up to v1.13: import the QCOW2 (the v1.11 docs convert raw to qcow2 with `qemu-img` first) with firmware
  UEFI_64, launch mode PARAVIRTUALIZED (network, boot and data volumes), shape compatibility VM.Standard.A1.Flex.
- From v1.14: "the qcow2 disk image does not boot on OCI"; convert it with
  `qemu-img convert -f qcow2 -O vmdk -o subformat=streamOptimized`, import as VMDK with launch mode
  PARAVIRTUALIZED and BIOS firmware (VMDK's default: "do not switch it to UEFI_64").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

A1_SHAPE = "VM.Standard.A1.Flex"
SourceFormat = Literal["QCOW2", "VMDK"]


@dataclass(frozen=True)
class ImageRecipe:
    """Factory artifact → conversion → OCI import settings for one Talos release."""

    artifact: str  # the Image Factory file name, like oracle-arm64.qcow2
    convert_from: Literal["raw", "qcow2"] | None  # qemu-img input format, None: upload as downloaded
    source_format: SourceFormat  # what is uploaded and named in CreateImage (sourceImageType)
    firmware: Literal["UEFI_64", "BIOS"]
    launch_mode: Literal["PARAVIRTUALIZED"]
    shapes: tuple[str, ...]
    source: str

    @property
    def object_suffix(self) -> str:
        return ".vmdk" if self.source_format == "VMDK" else ".qcow2"

    def describe(self) -> str:
        how = f"converted from {self.convert_from} with qemu-img" if self.convert_from else "as downloaded"
        return (f"{self.artifact} {how}, imported as {self.source_format} with {self.firmware} firmware, launch mode "
                f"{self.launch_mode}, shapes {', '.join(self.shapes)} ({self.source})")


def _release(version: str) -> tuple[int, int, int]:
    major, minor, patch = (version.lstrip("v").split("-")[0].split(".") + ["0", "0"])[:3]
    return int(major), int(minor), int(patch)


def image_recipe(talos_version: str, arch: str = "arm64") -> ImageRecipe:
    """The recipe Talos documents for `talos_version` (like v1.13.9) on OCI."""
    release = _release(talos_version)
    qcow2_artifact = release >= (1, 12, 2)
    artifact = f"oracle-{arch}.qcow2" if qcow2_artifact else f"oracle-{arch}.raw.xz"
    if release >= (1, 14, 0):
        return ImageRecipe(artifact, "qcow2", "VMDK", "BIOS", "PARAVIRTUALIZED", (A1_SHAPE,),
                           "Talos v1.14 docs, Oracle: qcow2 does not boot, import a streamOptimized VMDK with BIOS firmware")
    return ImageRecipe(artifact, None if qcow2_artifact else "raw", "QCOW2", "UEFI_64", "PARAVIRTUALIZED", (A1_SHAPE,),
                       f"Talos v{release[0]}.{release[1]} docs, Oracle: image_metadata.json firmware UEFI_64, PARAVIRTUALIZED")


def image_name(cluster_platform: str, talos_version: str, arch: str, schematic_id: str) -> str:
    """The custom image's display name and the object's stem: one per release, arch and schematic, so a
    second deploy finds it (reuse) and another schematic never takes it."""
    return f"{cluster_platform}-talos-{talos_version}-{arch}-{schematic_id[:12]}"
