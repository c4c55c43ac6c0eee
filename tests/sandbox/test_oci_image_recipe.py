"""Issue 15: the import recipe per Talos release (what Talos documents for Oracle), the qemu-img conversion it
needs from v1.14 on (the real program), and the OCI stand-in's LaunchInstance rules."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path

import pytest

from tierzero.adapters.disk_image import QCOW2_MAGIC, VMDK_MAGIC, decompress_xz, to_qcow2, to_vmdk_stream_optimized
from tierzero.errors import OperationError
from tierzero.render.oci_image import image_recipe
from tierzero.sandbox.image_factory import encode_image
from tierzero.sandbox.oci_compute import launch
from tierzero.sandbox.oci_storage import NAMESPACE, OciStorage, StoredObject


@pytest.mark.parametrize("version, artifact, convert, fmt, firmware", [
    ("v1.11.6", "oracle-arm64.raw.xz", "raw", "QCOW2", "UEFI_64"),    # v1.11 docs: qemu-img raw -> qcow2
    ("v1.12.1", "oracle-arm64.raw.xz", "raw", "QCOW2", "UEFI_64"),    # before the factory served qcow2
    ("v1.12.2", "oracle-arm64.qcow2", None, "QCOW2", "UEFI_64"),      # talos 30da0bc19: qcow2 from the factory
    ("v1.13.9", "oracle-arm64.qcow2", None, "QCOW2", "UEFI_64"),
    ("v1.14.0", "oracle-arm64.qcow2", "qcow2", "VMDK", "BIOS"),       # v1.14 docs: qcow2 does not boot on OCI
    ("v1.15.2", "oracle-arm64.qcow2", "qcow2", "VMDK", "BIOS"),
])
def test_the_recipe_follows_the_docs_of_the_release(version, artifact, convert, fmt, firmware):
    recipe = image_recipe(version)
    assert (recipe.artifact, recipe.convert_from, recipe.source_format, recipe.firmware) == (artifact, convert, fmt, firmware)
    assert recipe.launch_mode == "PARAVIRTUALIZED" and recipe.shapes == ("VM.Standard.A1.Flex",)


needs_qemu_img = pytest.mark.skipif(shutil.which("qemu-img") is None, reason="qemu-img (qemu-utils) is not installed; .ci/run installs it")


@needs_qemu_img
def test_qemu_img_turns_a_raw_disk_into_qcow2_then_a_stream_optimized_vmdk(tmp_path: Path):
    import lzma

    raw = tmp_path / "oracle-arm64.raw"
    raw.write_bytes(b"talos" * 1000 + bytes(1024 * 1024))
    xz = tmp_path / "oracle-arm64.raw.xz"
    xz.write_bytes(lzma.compress(raw.read_bytes()))
    unpacked = decompress_xz(xz, tmp_path / "unpacked.raw")
    qcow2 = to_qcow2(unpacked, tmp_path / "disk.qcow2")
    assert qcow2.read_bytes()[:4] == QCOW2_MAGIC
    vmdk = to_vmdk_stream_optimized(qcow2, tmp_path / "disk.vmdk")
    assert vmdk.read_bytes()[:4] == VMDK_MAGIC
    info = subprocess.run(["qemu-img", "info", "--output=json", str(vmdk)], capture_output=True, text=True, check=True).stdout
    assert '"create-type": "streamOptimized"' in info or "streamOptimized" in info
    back = tmp_path / "back.raw"
    subprocess.run(["qemu-img", "convert", "-f", "vmdk", "-O", "raw", str(vmdk), str(back)], check=True)
    assert back.read_bytes()[:5000] == raw.read_bytes()[:5000]
    assert not list(tmp_path.glob("*.part"))  # written aside, then renamed


@needs_qemu_img
def test_a_file_that_is_not_qcow2_is_refused_with_qemu_imgs_words(tmp_path: Path):
    bad = tmp_path / "bad.qcow2"
    bad.write_bytes(b"not a disk")
    with pytest.raises(OperationError, match="qemu-img"):
        to_vmdk_stream_optimized(bad, tmp_path / "bad.vmdk")
    assert not (tmp_path / "bad.vmdk").exists() and not list(tmp_path.glob("*.part"))


def _storage_with_image(shapes: list[str]) -> tuple[OciStorage, str]:
    storage = OciStorage(payg=True)
    meta = {"schematic": "s", "version": "v1.13.9", "platform": "oracle", "arch": "arm64", "format": "qcow2",
            "secureboot": False, "extensions": [], "kernel_args": [], "virtual_size": 1}
    storage.buckets["b"] = {}
    storage.objects[("b", "o")] = StoredObject(encode_image(meta), {}, "e", ("content-md5", ""))
    image_id = "ocid1.image.oc1..x"
    storage.images[image_id] = {"id": image_id, "lifecycleState": "AVAILABLE", "sourceObject": [NAMESPACE, "b", "o"]}
    storage.shapes[image_id] = shapes
    return storage, image_id


def _details(image_id: str, **extra) -> dict:
    return {"displayName": "n1", "shape": "VM.Standard.A1.Flex", "shapeConfig": {"ocpus": 1, "memoryInGBs": 6},
            "sourceDetails": {"sourceType": "image", "imageId": image_id},
            "createVnicDetails": {"privateIp": "10.0.1.11", "hostnameLabel": "n1"},
            "metadata": {"user_data": base64.b64encode(b"version: v1alpha1\n").decode()}, **extra}


def test_launch_refuses_an_image_without_the_shape_and_a_flex_shape_without_its_config():
    storage, image_id = _storage_with_image([])
    reply = launch(storage, _details(image_id), "10.0.1.0/24")
    assert reply.status == 400 and reply.body["message"] == f"Shape VM.Standard.A1.Flex is not valid for image {image_id}."
    storage.shapes[image_id] = ["VM.Standard.A1.Flex"]
    reply = launch(storage, _details(image_id, shapeConfig=None), "10.0.1.0/24")
    assert reply.status == 400 and "Cannot launch flexible instance without ShapeConfig" in reply.body["message"]
    reply = launch(storage, _details(image_id, metadata={"user_data": "%%%"}), "10.0.1.0/24")
    assert reply.status == 200  # the API does not check user_data's encoding (LaunchInstanceDetails.metadata)


def test_launch_boots_the_image_with_the_decoded_user_data_at_the_vnic_address():
    storage, image_id = _storage_with_image(["VM.Standard.A1.Flex"])
    booted = []
    reply = launch(storage, _details(image_id), "10.0.1.0/24", lambda *args: booted.append(args))
    assert reply.status == 200 and reply.body["lifecycleState"] == "RUNNING"
    ((instance, image, user_data, network, mac),) = booted
    assert image["platform"] == "oracle" and user_data == b"version: v1alpha1\n"
    assert network[0]["subnets"] == [{"type": "static", "address": "10.0.1.11", "netmask": "255.255.255.0", "gateway": "10.0.1.1"}]
    assert network[0]["mac_address"] == mac and instance["displayName"] == "n1"
