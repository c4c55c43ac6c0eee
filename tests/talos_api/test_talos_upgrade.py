"""The Talos stand-in's Upgrade, over real gRPC and TLS, with the Image Factory stand-in's
registry behind it: refused as Talos v1.12.11 refuses it (an installer it cannot pull; a control
plane whose etcd would lose quorum, unless forced), otherwise acknowledged, then the node reboots
into the installer's version with its config and etcd membership."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from tierzero.adapters.talos import TalosClient
from tierzero.errors import OperationError
from tierzero.sandbox import factory_registry
from tierzero.sandbox.image_factory import ImageFactory, start_image_factory

SCHEMATIC = "customization:\n    systemExtensions:\n        officialExtensions:\n            - siderolabs/qemu-guest-agent\n"


@pytest.fixture
def factory(registry) -> tuple[ImageFactory, str]:
    image_factory = ImageFactory()
    _, doc = image_factory.create(SCHEMATIC.encode())

    def pull(ref: str) -> dict:
        parsed = factory_registry.InstallerRef.parse(ref)
        try:
            return factory_registry.installer(image_factory, parsed.image, parsed.schematic, parsed.reference)
        except factory_registry.RegistryError as err:
            raise LookupError(f"{err.status}: {err.text}") from None

    registry.installers = pull
    return image_factory, doc["id"]


async def _cluster(start, connections, pki, count: int, *, version: str = "v1.12.10") -> list:
    nodes = []
    for i in range(count):
        address = f"10.10.1.{11 + i}"
        node = await start(address, hostname=f"cp{i + 1}", version=version)
        async with TalosClient.maintenance(address, connections=connections) as insecure:
            await insecure.apply_configuration(pki.machine_config("controlplane", hostname=f"cp{i + 1}"))
        nodes.append(node)
    async with _client(pki, connections, nodes[0].address) as client:
        await client.wait_ready(10)
        await client.bootstrap()
    for node in nodes:
        await node.settled()
    return nodes


def _client(pki, connections, address: str) -> TalosClient:
    return TalosClient.authenticated(address, pki.talosconfig([address]), connections=connections)


async def test_upgrade_reboots_into_the_installer_version_keeping_config_and_etcd(start, connections, pki, factory) -> None:
    _, sid = factory
    nodes = await _cluster(start, connections, pki, 3)
    async with _client(pki, connections, nodes[1].address) as client:
        ack = await client.upgrade(f"factory.talos.dev/nocloud-installer/{sid}:v1.12.11")
        assert ack == "Upgrade request received"
        await nodes[1].settled()
        info = await client.wait_ready(10)
        assert info.tag == "v1.12.11" and info.hostname == "cp2"
        assert len(await client.etcd_members()) == 3  # still a member: the upgrade preserves etcd's data
    assert [n.version_tag for n in nodes] == ["v1.12.10", "v1.12.11", "v1.12.10"]


@pytest.mark.parametrize(("ref", "error"), [
    ("factory.talos.dev/nocloud-installer/{sid}:v1.99.0", "version 1.99.0 is not available"),
    ("factory.talos.dev/nocloud-installer/{other}:v1.12.11", "not found"),
    ("factory.talos.dev/nocloud-image/{sid}:v1.12.11", "invalid image: nocloud-image"),
])
async def test_an_installer_that_cannot_be_pulled_is_refused_before_anything(ref, error, start, connections, pki, factory) -> None:
    _, sid = factory
    nodes = await _cluster(start, connections, pki, 1)
    async with _client(pki, connections, nodes[0].address) as client:
        with pytest.raises(OperationError) as err:
            await client.upgrade(ref.format(sid=sid, other="0" * 64))
        assert "UNKNOWN: error validating installer image" in err.value.message and error in err.value.message
        assert (await client.version()).tag == "v1.12.10"


async def test_a_control_plane_is_not_upgraded_while_another_member_is_down(start, connections, pki, factory) -> None:
    _, sid = factory
    nodes = await _cluster(start, connections, pki, 3)
    await nodes[2].power_off()
    ref = f"factory.talos.dev/nocloud-installer/{sid}:v1.12.11"
    async with _client(pki, connections, nodes[0].address) as client:
        with pytest.raises(OperationError, match="error validating etcd for upgrade: etcd member [0-9a-f]{16} is not healthy"):
            await client.upgrade(ref)
        assert (await client.version()).tag == "v1.12.10"
        assert await client.upgrade(ref, force=True) == "Upgrade request received"  # force skips the etcd check


async def test_a_two_member_etcd_is_never_upgraded_without_force(start, connections, pki, factory) -> None:
    _, sid = factory
    nodes = await _cluster(start, connections, pki, 2)
    async with _client(pki, connections, nodes[0].address) as client:
        with pytest.raises(OperationError, match=r"etcd member count\(2\) is insufficient to maintain quorum"):
            await client.upgrade(f"factory.talos.dev/installer/{sid}:v1.12.11")


def test_the_factory_registry_serves_installer_manifests_as_image_factory_does() -> None:
    image_factory = ImageFactory()
    _, doc = image_factory.create(SCHEMATIC.encode())
    sid = doc["id"]
    server = start_image_factory(image_factory)
    try:
        with urllib.request.urlopen(f"{server.url}/v2", timeout=10) as health:
            assert health.status == 200
        with urllib.request.urlopen(f"{server.url}/v2/nocloud-installer-secureboot/{sid}/manifests/latest", timeout=10) as answer:
            assert answer.status == 200 and answer.headers["Content-Type"] == factory_registry.INDEX_MEDIA_TYPE
            index = json.loads(answer.read())
        annotations = {k.rsplit(".", 1)[1]: json.loads(v) for k, v in index["annotations"].items()}
        assert annotations["version"] == "v1.13.9"  # latest: the newest stable release the factory serves
        assert (annotations["platform"], annotations["secureboot"]) == ("nocloud", True)
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"{server.url}/v2/installer/{'0' * 64}/manifests/v1.12.11", timeout=10)
        assert (missing.value.code, missing.value.read()) == (404, f'schematic ID "{"0" * 64}" not found\n'.encode())
    finally:
        server.stop()
    meta = factory_registry.installer(image_factory, "installer", sid, "v1.12.11")
    assert meta["platform"] == "metal" and meta["extensions"] == ["siderolabs/qemu-guest-agent"]
    with pytest.raises(factory_registry.RegistryError) as err:
        factory_registry.installer(image_factory, "installer", sid, "sha256:" + "a" * 64)
    assert err.value.status == 501
    with pytest.raises(factory_registry.RegistryError) as err:
        factory_registry.manifest(image_factory, ["installer", sid, "blobs", "v1.12.11"])
    assert err.value.status == 404
