"""What `talosctl gen config` fills in when its install flags are left out, per version contract.

talosctl defaults `--install-disk` to `/dev/sda` and `--install-image` to the installer of its own
release (siderolabs/talos `cmd/talosctl/cmd/mgmt/gen/config.go`, flags `install-disk` and
`install-image`, at v1.11.6 … v1.14.0-rc.1 and main):

- up to v1.13: `helpers.DefaultImage(images.DefaultInstallerImageRepository)`, i.e.
  `ghcr.io/siderolabs/installer:<tag>` (`pkg/images/images.go`, registry `ghcr.io`, user `siderolabs`);
- from v1.14: `helpers.DefaultImage(images.InstallerImageRepository("metal"))`, i.e.
  `factory.talos.dev/metal-installer/<empty schematic>:<tag>`, where the empty schematic is
  `376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba` (`DefaultInstallerImageSchematic`,
  the sha256 of `customization: {}`) and the factory is `pkg/machinery/gendata/data/factory`.

The library (`generate.NewInput`, our `GenerateOptions`) has no such defaults: the stability test
data is generated without an install disk, and so is ours.
"""

from __future__ import annotations

import re

from tierzero.render.talos.contract import Contract
from tierzero.render.talos.schematic import FACTORY_HOST, Schematic

DEFAULT_INSTALL_DISK = "/dev/sda"
LEGACY_INSTALLER_REPOSITORY = "ghcr.io/siderolabs/installer"
EMPTY_SCHEMATIC_ID = Schematic().id  # 376567988ad3…: Image Factory's ID of `customization: {}`

# The newest release tag of each line, read from the siderolabs/talos tags; a talosctl of that line
# writes it into the installer image. v1.14/v1.15 had no final release among the fetched tags
# (newest: v1.14.0-rc.1), so their first release, which talosctl vX.Y.0 writes, stands in.
NEWEST_RELEASES = {
    "v1.11": "v1.11.6",
    "v1.12": "v1.12.11",
    "v1.13": "v1.13.9",
    "v1.14": "v1.14.0",
    "v1.15": "v1.15.0",
}

_RELEASE = re.compile(r"^v?(\d+\.\d+\.\d+(?:-[0-9A-Za-z.]+)?)$")


def release_tag(talos_version: str) -> str:
    """The release a version names: `v1.13.5` for "1.13.5", the newest known release for "v1.13"."""
    match = _RELEASE.match(talos_version.strip())
    if match:
        return "v" + match.group(1)
    return NEWEST_RELEASES[str(Contract.parse(talos_version))]


def default_install_image(talos_version: str) -> str:
    """The installer `talosctl gen config` of this release writes when `--install-image` is not given."""
    contract = Contract.parse(talos_version)
    tag = release_tag(talos_version)
    if contract.multidoc_kubernetes:
        return f"{FACTORY_HOST}/metal-installer/{EMPTY_SCHEMATIC_ID}:{tag}"
    return f"{LEGACY_INSTALLER_REPOSITORY}:{tag}"
