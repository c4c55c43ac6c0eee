"""Image Factory schematics: the offline ID and the image references built from it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal

from tierzero.render.talos import yamlio

FACTORY_HOST = "factory.talos.dev"
Arch = Literal["amd64", "arm64"]


@dataclass(frozen=True)
class Overlay:
    image: str
    name: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Schematic:
    extra_kernel_args: tuple[str, ...] = ()
    meta: tuple[tuple[int, str], ...] = ()
    official_extensions: tuple[str, ...] = ()
    secureboot_well_known_certificates: bool = False
    overlay: Overlay | None = None

    def to_dict(self) -> dict[str, Any]:
        """The schematic in Image Factory's canonical field order, empty fields omitted."""
        customization: dict[str, Any] = {}
        if self.extra_kernel_args:
            customization["extraKernelArgs"] = list(self.extra_kernel_args)
        if self.meta:
            customization["meta"] = [{"key": key, "value": value} for key, value in self.meta]
        if self.official_extensions:
            customization["systemExtensions"] = {"officialExtensions": list(self.official_extensions)}
        if self.secureboot_well_known_certificates:
            customization["secureboot"] = {"includeWellKnownCertificates": True}
        result: dict[str, Any] = {}
        if self.overlay is not None:
            overlay: dict[str, Any] = {"image": self.overlay.image, "name": self.overlay.name}
            if self.overlay.options:
                overlay["options"] = _sorted_maps(self.overlay.options)
            result["overlay"] = overlay
        result["customization"] = customization
        return result

    def canonical_yaml(self) -> str:
        return yamlio.dump_document(self.to_dict())

    @property
    def id(self) -> str:
        """sha256 of the canonical YAML, as Image Factory computes it."""
        return hashlib.sha256(self.canonical_yaml().encode()).hexdigest()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Schematic:
        custom = data.get("customization") or {}
        overlay_raw = data.get("overlay")
        overlay = None
        if overlay_raw and (overlay_raw.get("image") or overlay_raw.get("name") or overlay_raw.get("options")):
            overlay = Overlay(overlay_raw.get("image", ""), overlay_raw.get("name", ""), overlay_raw.get("options") or {})
        return cls(
            extra_kernel_args=tuple(custom.get("extraKernelArgs") or ()),
            meta=tuple((int(m["key"]), str(m["value"])) for m in custom.get("meta") or ()),
            official_extensions=tuple((custom.get("systemExtensions") or {}).get("officialExtensions") or ()),
            secureboot_well_known_certificates=bool((custom.get("secureboot") or {}).get("includeWellKnownCertificates")),
            overlay=overlay,
        )


def _sorted_maps(value: Any) -> Any:
    # go-yaml writes Go maps with sorted keys
    if isinstance(value, dict):
        return {k: _sorted_maps(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted_maps(v) for v in value]
    return value


def installer_image(schematic_id: str, talos_version: str, *, platform: str = "metal", secureboot: bool = False,
                    host: str = FACTORY_HOST) -> str:
    """The installer reference for UnattendedInstallConfig / machine.install.image."""
    kind = "installer" if platform == "metal" else f"{platform}-installer"
    if secureboot:
        kind += "-secureboot"
    return f"{host}/{kind}/{schematic_id}:{_v(talos_version)}"


def disk_image_url(schematic_id: str, talos_version: str, arch: Arch = "amd64", *, platform: str = "nocloud",
                   fmt: str = "raw.xz", base: str = f"https://{FACTORY_HOST}") -> str:
    """A disk image (`fmt`: raw, qcow2, ... optionally .xz/.zst), e.g. for a Proxmox NoCloud VM."""
    return f"{base.rstrip('/')}/image/{schematic_id}/{_v(talos_version)}/{platform}-{arch}.{fmt}"


def iso_url(schematic_id: str, talos_version: str, arch: Arch = "amd64", *, platform: str = "nocloud") -> str:
    return f"https://{FACTORY_HOST}/image/{schematic_id}/{_v(talos_version)}/{platform}-{arch}.iso"


def _v(version: str) -> str:
    return "v" + version.removeprefix("v")
