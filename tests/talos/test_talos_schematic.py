"""Image Factory schematic IDs computed offline match the IDs Image Factory publishes."""

from __future__ import annotations

import pytest

from tierzero.render.talos.schematic import Overlay, Schematic, disk_image_url, installer_image, iso_url

EMPTY_ID = "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba"


@pytest.mark.parametrize(
    ("schematic", "expected"),
    [
        (Schematic(), EMPTY_ID),
        (Schematic(extra_kernel_args=("noapic", "nolapic")), "9cba8e32753f91a16c1837ab8abf356af021706ef284aef07380780177d9a06c"),
        (Schematic(meta=((10, "foo"),)), "d308a2a5ee2277bed5fbaa104fcbc8d59122abfa737df987a95b4ca763459a7f"),
        (Schematic(secureboot_well_known_certificates=True), "fa8e05f142a851d3ee568eb0a8e5841eaf6b0ebc8df9a63df16ac5ed2c04f3e6"),
        (
            Schematic(overlay=Overlay(image="siderolabs/sbc-raspberrypi", name="rpi_generic")),
            "ee21ef4a5ef808a9b7484cc0dda0f25075021691c8c09a276591eedb638ea1f9",
        ),
        # the widely used Proxmox schematic: QEMU guest agent only
        (
            Schematic(official_extensions=("siderolabs/qemu-guest-agent",)),
            "ce4c980550dd2ab1b17bbf2b08801c7eb59418eafe8f279833297925d67c7515",
        ),
    ],
)
def test_published_ids(schematic, expected):
    assert schematic.id == expected


@pytest.mark.parametrize(
    "data",
    [{}, {"customization": {}}, {"customization": {"extraKernelArgs": []}}, {"customization": {"systemExtensions": {}}}],
)
def test_empty_forms_share_the_default_id(data):
    assert Schematic.from_dict(data).id == EMPTY_ID


def test_canonical_yaml_layout():
    text = Schematic(official_extensions=("siderolabs/qemu-guest-agent", "siderolabs/iscsi-tools")).canonical_yaml()
    assert text == (
        "customization:\n    systemExtensions:\n        officialExtensions:\n"
        "            - siderolabs/qemu-guest-agent\n            - siderolabs/iscsi-tools\n"
    )


def test_extension_order_matters_like_in_image_factory():
    a = Schematic(official_extensions=("siderolabs/a", "siderolabs/b"))
    b = Schematic(official_extensions=("siderolabs/b", "siderolabs/a"))
    assert a.id != b.id


def test_image_references():
    sid = EMPTY_ID
    assert installer_image(sid, "1.14.0") == f"factory.talos.dev/installer/{sid}:v1.14.0"
    assert installer_image(sid, "v1.14.0", platform="nocloud") == f"factory.talos.dev/nocloud-installer/{sid}:v1.14.0"
    assert installer_image(sid, "v1.14.0", secureboot=True) == f"factory.talos.dev/installer-secureboot/{sid}:v1.14.0"
    assert disk_image_url(sid, "v1.14.0", "arm64") == f"https://factory.talos.dev/image/{sid}/v1.14.0/nocloud-arm64.raw.xz"
    assert iso_url(sid, "v1.14.0") == f"https://factory.talos.dev/image/{sid}/v1.14.0/nocloud-amd64.iso"
