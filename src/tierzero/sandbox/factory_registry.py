"""The Image Factory stand-in's container registry: the installer images a Talos node pulls to
upgrade (`factory.talos.dev/<image>/<schematic>:<version>`), as siderolabs/image-factory v1.5.0
serves them under `/v2/` (IF = that tag).

Rules, each with its source:
- `/v2` answers 200 (health; IF internal/frontend/http/http.go 207-210).
- `/v2/<image>/<schematic>/manifests/<reference>`: the schematic is looked up first, an unknown
  one is 404 `schematic ID "<id>" not found`; then the image name: `installer`,
  `installer-secureboot`, `<platform>-installer`, `<platform>-installer-secureboot`, anything else
  400 `invalid image: <name>`; `latest` is the newest stable release the factory knows; a
  reference that is a digest or does not start with `v` goes to the external registry (not
  modelled: 501); a version the factory does not serve is 404 `version X is not available`.
  Source: IF internal/frontend/http/registry.go handleManifest, getRequestedImage, resolveLatest;
  internal/artifacts/manager.go validateTalosVersion.
- Not modelled: the real factory answers a built installer with a redirect to its external
  registry (by digest); the stand-in answers the OCI image index itself, its annotations naming
  what the installer installs (the same description the disk images carry).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import yaml

INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
_STABLE = re.compile(r"^v\d+\.\d+\.\d+$")


class RegistryError(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status, self.text = status, text


@dataclass(frozen=True)
class InstallerRef:
    """`<host>/<image>/<schematic>:<version>` split into its parts."""

    host: str
    image: str
    schematic: str
    reference: str

    @classmethod
    def parse(cls, ref: str) -> "InstallerRef":
        """ValueError when `ref` is not of that shape (Talos' containerd cannot resolve it either)."""
        found = re.match(r"^(?P<host>[^/]+)/(?P<image>[^/]+)/(?P<sid>[0-9a-f]{64}):(?P<tag>[^:/@]+)$", ref)
        if found is None:
            raise ValueError(f"not an Image Factory installer reference: {ref!r}")
        return cls(found["host"], found["image"], found["sid"], found["tag"])


def _requested_platform(image: str) -> tuple[str, bool]:
    """(platform, secureboot) of an installer image name (IF registry.go getRequestedImage)."""
    if image in ("installer", "installer-secureboot"):
        return "metal", image.endswith("-secureboot")
    for suffix, secureboot in (("-installer-secureboot", True), ("-installer", False)):
        if image.endswith(suffix) and image != suffix:
            return image.removesuffix(suffix), secureboot
    raise RegistryError(400, f"invalid image: {image}")


def installer(factory: Any, image: str, schematic_id: str, reference: str) -> dict[str, Any]:
    """What the installer `image`/`schematic_id`:`reference` installs: {"schematic", "version",
    "platform", "secureboot", "extensions", "extra_kernel_args"}. `factory` is the stand-in's
    `ImageFactory`. RegistryError(status, text) as the factory answers."""
    text = factory.schematics.get(schematic_id)
    if text is None:
        raise RegistryError(404, f'schematic ID "{schematic_id}" not found')
    platform, secureboot = _requested_platform(image)
    if reference == "latest":
        reference = [v for v in factory.versions if _STABLE.match(v)][-1]
    if reference.startswith("sha256:") or not reference.startswith("v"):
        raise RegistryError(501, "sandbox: installer references by digest go to the external registry, which is not modelled")
    if reference not in factory.versions:
        raise RegistryError(404, f"version {reference.removeprefix('v')} is not available")
    custom = (yaml.safe_load(text) or {}).get("customization") or {}
    return {
        "schematic": schematic_id, "version": reference, "platform": platform, "secureboot": secureboot,
        "extensions": list((custom.get("systemExtensions") or {}).get("officialExtensions") or []),
        "extra_kernel_args": list(custom.get("extraKernelArgs") or []),
    }


def manifest(factory: Any, parts: list[str]) -> tuple[int, bytes, str]:
    """The answer to GET/HEAD `/v2/<parts...>`: (status, body, content type)."""
    if not parts:
        return 200, b"", "text/plain; charset=utf-8"
    if len(parts) != 4 or parts[2] != "manifests":
        raise RegistryError(404, "404 page not found")
    meta = installer(factory, parts[0], parts[1], parts[3])
    annotations = {f"dev.tierzero.sandbox.{k}": json.dumps(v) for k, v in meta.items()}
    index = {"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": [], "annotations": annotations}
    return 200, json.dumps(index).encode(), INDEX_MEDIA_TYPE


__all__ = ["INDEX_MEDIA_TYPE", "InstallerRef", "RegistryError", "installer", "manifest"]
