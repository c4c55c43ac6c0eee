"""The Image Factory stand-in answers as siderolabs/image-factory v1.5.0's community build does:
schematic IDs as the factory computes them, nothing for a schematic never uploaded, the refusals
of its image route, no checksums; and the product's client against it."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from tierzero.adapters.image_factory import ImageFactory
from tierzero.render.talos.schematic import Schematic
from tierzero.sandbox.image_factory import (
    ImageFactory as FactoryState,
    ImageFactoryServer,
    parse_image,
    start_image_factory,
)

# Test vectors of siderolabs/image-factory v1.5.0 pkg/schematic/schematic_test.go (TestID), and the
# ID the Talos Proxmox guide uses for qemu-guest-agent (docs v1.13 proxmox.mdx).
VECTORS = [
    (b"{}", "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba"),
    (b"customization: {extraKernelArgs: [noapic, nolapic]}", "9cba8e32753f91a16c1837ab8abf356af021706ef284aef07380780177d9a06c"),
    (b"customization: {meta: [{key: 10, value: foo}]}", "d308a2a5ee2277bed5fbaa104fcbc8d59122abfa737df987a95b4ca763459a7f"),
    (b"overlay: {image: siderolabs/sbc-raspberrypi, name: rpi_generic}", "ee21ef4a5ef808a9b7484cc0dda0f25075021691c8c09a276591eedb638ea1f9"),
    (b"customization: {secureboot: {includeWellKnownCertificates: true}}", "fa8e05f142a851d3ee568eb0a8e5841eaf6b0ebc8df9a63df16ac5ed2c04f3e6"),
    (b"customization: {diskImage: {sectorSize: 4096}}", "92833e9ddd9bb9e11b2464fa5525429f01866306d52ebd882ee08d7918f6d1ea"),
    (b"customization: {systemExtensions: {officialExtensions: [siderolabs/qemu-guest-agent]}}",
     "ce4c980550dd2ab1b17bbf2b08801c7eb59418eafe8f279833297925d67c7515"),
]


@pytest.fixture
def factory() -> Iterator[ImageFactoryServer]:
    server = start_image_factory()
    yield server
    server.stop()


def request(url: str, data: bytes | None = None) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


@pytest.mark.parametrize("body, sid", VECTORS)
def test_schematic_ids_are_the_factorys(factory: ImageFactoryServer, body: bytes, sid: str) -> None:
    status, answer = request(factory.url + "/schematics", body)
    assert status == 201 and json.loads(answer)["id"] == sid
    assert request(factory.url + "/schematics", body)[0] == 201  # again: the same schematic, the same answer


def test_the_product_computes_the_same_ids_offline() -> None:
    state = FactoryState()
    for extensions in ((), ("siderolabs/qemu-guest-agent",), ("siderolabs/iscsi-tools", "siderolabs/qemu-guest-agent")):
        ours = Schematic(official_extensions=extensions)
        assert state.create(ours.canonical_yaml().encode())[1]["id"] == ours.id


def test_an_image_of_a_schematic_never_uploaded_is_not_found(factory: ImageFactoryServer) -> None:
    """IF internal/schematic/storage: an unknown ID is `schematic ID "<id>" not found` (404)."""
    sid = Schematic(official_extensions=("siderolabs/iscsi-tools",)).id
    status, body = request(f"{factory.url}/image/{sid}/v1.13.9/nocloud-amd64.qcow2")
    assert status == 404 and body == f'schematic ID "{sid}" not found\n'.encode()
    request(factory.url + "/schematics", Schematic(official_extensions=("siderolabs/iscsi-tools",)).canonical_yaml().encode())
    status, body = request(f"{factory.url}/image/{sid}/v1.13.9/nocloud-amd64.qcow2")
    meta = parse_image(body)
    assert status == 200 and meta is not None
    assert (meta["version"], meta["platform"], meta["format"], meta["extensions"]) == ("v1.13.9", "nocloud", "qcow2", ["siderolabs/iscsi-tools"])
    assert "net.ifnames=0" in meta["kernel_args"]


def test_the_image_route_refuses_as_the_factory_does(factory: ImageFactoryServer) -> None:
    """IF internal/frontend/http/image.go and internal/profile/profile.go at v1.5.0."""
    plain = json.loads(request(factory.url + "/schematics", b"{}")[1])["id"]
    with_ext = json.loads(request(factory.url + "/schematics", b"customization: {systemExtensions: {officialExtensions: [siderolabs/nonesuch]}}")[1])["id"]
    assert request(f"{factory.url}/image/{plain}/latest/metal-amd64.iso") == (500, b"internal server error\n")
    assert request(f"{factory.url}/image/{plain}/v1.99.0/metal-amd64.iso") == (404, b"failed to get kernel: version 1.99.0 is not available\n")
    assert request(f"{factory.url}/image/{plain}/v1.13.9/metal-amd64.tgz") == (400, b'error parsing profile from path: invalid profile path: "metal-amd64.tgz"\n')
    assert request(f"{factory.url}/image/{with_ext}/v1.13.9/metal-amd64.iso") == (
        400, b'error enhancing profile from schematic: official extension "siderolabs/nonesuch" is not available for Talos version v1.13.9\n')
    assert request(f"{factory.url}/image/{plain}/v1.13.9/metal-amd64.iso.sha256") == (402, b"enterprise not enabled: checksum endpoint is not available\n")


def test_unknown_fields_and_owner_are_refused() -> None:
    """IF pkg/schematic/schematic.go Unmarshal (KnownFields) and validate (owner is Enterprise only)."""
    state = FactoryState()
    with pytest.raises(Exception, match=r"yaml: construct errors:\n  line 2: field something not found in type schematic.Schematic"):
        state.create(b"customization: {}\nsomething: 1\n")
    with pytest.raises(Exception, match="owner field is only supported in Enterprise edition"):
        state.create(b"owner: me\n")


async def test_the_product_client_registers_and_reads_checksums(factory: ImageFactoryServer) -> None:
    client = ImageFactory(factory.url)
    try:
        sid = await client.register(Schematic(official_extensions=("siderolabs/qemu-guest-agent",)).canonical_yaml())
        assert sid == VECTORS[-1][1]
        url = f"{factory.url}/image/{sid}/v1.13.9/nocloud-amd64.qcow2"
        assert await client.checksum(url) is None  # the community build publishes none (402)
        factory.factory.enterprise = True
        import hashlib

        assert await client.checksum(url) == hashlib.sha256(request(url)[1]).hexdigest()
    finally:
        client.close()


def test_a_checksum_is_refused_before_the_schematic_is_looked_up(factory: ImageFactoryServer) -> None:
    """IF v1.5.0 internal/frontend/http/image.go 45-69: the 402 comes before the schematic (74)."""
    unknown = "0" * 64
    assert request(f"{factory.url}/image/{unknown}/v1.13.9/nocloud-amd64.qcow2.sha512") == (
        402, b"enterprise not enabled: checksum endpoint is not available\n")
    assert request(f"{factory.url}/image/{unknown}/v1.13.9/nocloud-amd64.qcow2.sigstore.json") == (
        402, b"enterprise signing is not enabled: signature endpoint is not available\n")
    assert request(f"{factory.url}/image/{unknown}/v1.13.9/nocloud-amd64.qcow2")[0] == 404


def test_versions_are_every_release_from_1_2_and_the_newest_minors_prereleases(factory: ImageFactoryServer) -> None:
    """IF v1.5.0 internal/artifacts/versions.go 52-92 and MinTalosVersion 1.2.0 (options.go 822)."""
    listed = json.loads(request(factory.url + "/versions")[1])
    assert listed[0] == "v1.2.0" and listed[-1] == "v1.14.0-rc.1"
    assert {"v1.8.4", "v1.12.11", "v1.14.0-alpha.0", "v1.14.0-beta.1"} <= set(listed)
    assert not [v for v in listed if "-" in v and not v.startswith("v1.14.")]  # no pre-release of an older minor
    assert listed.index("v1.13.9") < listed.index("v1.14.0-alpha.0") < listed.index("v1.14.0-rc.1")


@pytest.mark.parametrize("platform, mib", [("nocloud", 1246), ("metal", 1246), ("hcloud", 1246), ("oracle", 8192), ("aws", 8192),
                                           ("exoscale", 10240), ("vultr", 8192)])
def test_disk_images_have_the_platforms_default_size(platform: str, mib: int) -> None:
    """IF v1.5.0 internal/profile/profile.go 183-240 (DefaultRAWDiskSize unless the platform's
    default profile sets one); talos v1.14.0-rc.1 pkg/imager/profile/default.go."""
    state = FactoryState()
    sid = state.create(b"{}")[1]["id"]
    meta = parse_image(state.image(sid, "v1.13.9", f"{platform}-amd64.raw"))
    assert meta is not None and meta["virtual_size"] == mib * 1024**2


def test_an_enterprise_factory_accepts_an_owner_and_hashes_it() -> None:
    """IF v1.5.0 pkg/schematic/schematic.go: validateEnterprise accepts anything; Owner is the
    struct's first field, so it is part of the marshalled schematic and its ID."""
    state = FactoryState(enterprise=True)
    status, answer = state.create(b"owner: me\n")
    assert status == 201 and answer["schematic"] == "owner: me\ncustomization: {}\n"
    assert answer["id"] != VECTORS[0][1]
    with pytest.raises(Exception, match="signatures are not modelled"):  # the stand-in says so rather than invent one
        state.image(answer["id"], "v1.13.9", "nocloud-amd64.raw.xz.sigstore.json")


def test_schematic_get_and_the_probes_answer_as_the_factory_does(factory: ImageFactoryServer) -> None:
    """IF http.go 193-215: /healthz and /readyz 200 with no body; GET /schematics/<id> the YAML, or
    404 `schematic not found` (configuration.go handleSchematicGet)."""
    for probe in ("/healthz", "/readyz"):
        assert request(factory.url + probe) == (200, b"")
    schematic = Schematic(official_extensions=("siderolabs/iscsi-tools",))
    assert request(f"{factory.url}/schematics/{schematic.id}") == (404, b"schematic not found\n")
    request(factory.url + "/schematics", schematic.canonical_yaml().encode())
    status, body = request(f"{factory.url}/schematics/{schematic.id}")
    assert status == 200 and body.decode() == schematic.canonical_yaml()
