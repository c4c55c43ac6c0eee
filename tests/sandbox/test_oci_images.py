"""Issue 15: the Object Storage upload and the custom-image import, through the official OCI SDK against the
OCI stand-in (tierzero.sandbox.oci_storage): each stand-in rule and each adapter promise."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tierzero.adapters.connections import Endpoint
from tierzero.adapters.oci import Oci, throwaway_signer
from tierzero.adapters.oci_images import CustomImages, ImageCapabilities, ObjectSource
from tierzero.adapters.oci_object_storage import ObjectStore, file_sha256
from tierzero.errors import OperationError, RefusedError
from tierzero.sandbox.oci import OciApiServer, OciState
from tierzero.sandbox.oci_storage import OciStorage

COMPARTMENT = "ocid1.compartment.oc1..sandbox"
TENANCY = "ocid1.tenancy.oc1..t"
MIB = 1024 * 1024
CAPS = ImageCapabilities("VMDK", "PARAVIRTUALIZED", "BIOS", ("VM.Standard.A1.Flex",), "Talos", "v1.14.0")


@pytest.fixture(scope="module")
def signer():
    return throwaway_signer(TENANCY)


@pytest.fixture
def world(signer):
    def make(*, payg: bool = True) -> tuple[OciStorage, Oci]:
        storage = OciStorage(payg=payg)
        server = OciApiServer(OciState(storage=storage)).start()
        servers.append(server)
        endpoint = Endpoint("127.0.0.1", server.port, scheme="http", extra={"signer": signer, "region": "eu-frankfurt-1"})
        return storage, Oci(endpoint, region="eu-frankfurt-1", tenancy=TENANCY)

    servers: list[OciApiServer] = []
    yield make
    for server in servers:
        server.stop()


def a_file(tmp_path: Path, size: int, name: str = "disk.vmdk") -> Path:
    path = tmp_path / name
    path.write_bytes(os.urandom(size))
    return path


def test_a_fresh_tenancy_has_no_bucket_and_a_multipart_upload_lands_whole(world, tmp_path):
    storage, api = world()
    store = ObjectStore(api)
    assert store.namespace == "sandboxns" and store.head("tierzero-images", "x") is None  # no bucket yet: 404, no body
    path = a_file(tmp_path, 5 * MIB + 123)
    info = store.upload(COMPARTMENT, "tierzero-images", "talos.vmdk", path, part_size=MIB)
    assert info.uploaded and not info.resumed and info.size == path.stat().st_size
    assert info.sha256 == file_sha256(path)
    assert storage.objects[("tierzero-images", "talos.vmdk")].data == path.read_bytes()
    assert storage.part_puts == 6 and storage.objects[("tierzero-images", "talos.vmdk")].md5_header[1].endswith("-6")
    again = store.upload(COMPARTMENT, "tierzero-images", "talos.vmdk", path, part_size=MIB)
    assert not again.uploaded and storage.part_puts == 6  # the same file by its sha256: nothing sent


def test_an_interrupted_upload_resumes_with_only_the_missing_parts(world, tmp_path):
    import oci

    storage, api = world()
    store = ObjectStore(api, retry_strategy=oci.retry.NoneRetryStrategy())  # the UploadManager's own 5 tries per part
    path = a_file(tmp_path, 6 * MIB)
    storage.broken_parts = {4}  # part 4 keeps failing: the SDK retries it, then gives up
    with pytest.raises(OperationError, match="503 ServiceUnavailable") as err:
        store.upload(COMPARTMENT, "tierzero-images", "talos.vmdk", path, part_size=MIB)
    assert "resumes this upload" in (err.value.hint or "")
    assert len(storage.uploads) == 1 and ("tierzero-images", "talos.vmdk") not in storage.objects
    sent_before = storage.part_puts
    storage.broken_parts = set()
    info = store.upload(COMPARTMENT, "tierzero-images", "talos.vmdk", path, part_size=MIB)
    assert info.resumed and info.uploaded
    assert 1 <= sent_before < 6 and storage.part_puts == 6  # each part stored once: the resumed run sent only the missing ones
    assert storage.objects[("tierzero-images", "talos.vmdk")].data == path.read_bytes()
    assert not storage.uploads and info.sha256 == file_sha256(path)  # the metadata of the first attempt


def test_the_budget_is_checked_before_a_byte_is_sent(world, tmp_path):
    storage, api = world()
    store = ObjectStore(api)
    store.upload(COMPARTMENT, "tierzero-images", "old.qcow2", a_file(tmp_path, 3 * MIB, "old"), part_size=MIB)
    sent = storage.part_puts
    with pytest.raises(RefusedError, match="over the"):
        store.upload(COMPARTMENT, "tierzero-images", "new.qcow2", a_file(tmp_path, 2 * MIB, "new"), budget_bytes=4 * MIB, part_size=MIB)
    assert storage.part_puts == sent and ("tierzero-images", "new.qcow2") not in storage.objects


def test_commit_refuses_a_part_left_out(world, tmp_path):
    import oci

    storage, api = world()
    store = ObjectStore(api)
    store.ensure_bucket(COMPARTMENT, "b")
    client = store.client
    upload = client.create_multipart_upload("sandboxns", "b", oci.object_storage.models.CreateMultipartUploadDetails(object="o")).data
    etags = [client.upload_part("sandboxns", "b", "o", upload.upload_id, n, b"x" * 10).headers["etag"] for n in (1, 2)]
    details = oci.object_storage.models.CommitMultipartUploadDetails(
        parts_to_commit=[oci.object_storage.models.CommitMultipartUploadPartDetails(part_num=1, etag=etags[0])])
    with pytest.raises(oci.exceptions.ServiceError) as err:
        client.commit_multipart_upload("sandboxns", "b", "o", upload.upload_id, details)
    assert err.value.status == 400 and "partsToExclude or partsToCommit" in err.value.message
    with pytest.raises(oci.exceptions.ServiceError) as dup:
        client.create_bucket("sandboxns", oci.object_storage.models.CreateBucketDetails(name="b", compartment_id=COMPARTMENT))
    assert (dup.value.status, dup.value.code) == (409, "BucketAlreadyExists")


def test_an_always_free_only_tenancy_has_no_room_for_a_custom_image(world, tmp_path):
    storage, api = world(payg=False)
    images = CustomImages(api, poll_seconds=0)
    assert images.custom_image_room(TENANCY) == 0
    with pytest.raises(RefusedError) as err:
        images.require_room(TENANCY)
    assert "compute/custom-image-count" in err.value.message and "Pay As You Go" in (err.value.hint or "")
    assert storage.part_puts == 0 and not storage.objects  # refused before anything was uploaded
    with pytest.raises(OperationError, match="LimitExceeded"):  # and CreateImage itself refuses, as OCI does
        images.import_from_object(COMPARTMENT, "x", ObjectSource("sandboxns", "b", "o"), CAPS)


def test_import_follows_the_work_request_then_sets_firmware_and_shape_and_is_found_again(world, tmp_path):
    storage, api = world(payg=True)
    store = ObjectStore(api)
    store.upload(COMPARTMENT, "tierzero-images", "talos.vmdk", a_file(tmp_path, 2 * MIB), part_size=MIB)
    images = CustomImages(api, poll_seconds=0)
    images.require_room(TENANCY)
    image = images.import_from_object(COMPARTMENT, "talos-v1.14.0", ObjectSource("sandboxns", "tierzero-images", "talos.vmdk"), CAPS)
    assert image.imported and image.state == "AVAILABLE"
    assert images.shapes(image.id) == ["VM.Standard.A1.Flex"]
    assert images.describe(image.id)["firmware"] == "BIOS" and images.describe(image.id)["launch_mode"] == "PARAVIRTUALIZED"
    found = images.find(COMPARTMENT, "talos-v1.14.0")
    assert found is not None and found.id == image.id and not found.imported
    assert images.custom_image_room(TENANCY) == 24


def test_an_import_of_a_missing_object_fails_with_the_work_requests_error(world):
    _, api = world(payg=True)
    images = CustomImages(api, poll_seconds=0)
    with pytest.raises(OperationError, match="ObjectNotFound"):
        images.import_from_object(COMPARTMENT, "t", ObjectSource("sandboxns", "tierzero-images", "nothing.vmdk"), CAPS)
    assert images.find(COMPARTMENT, "t") is None


def test_an_import_may_name_its_object_by_uri_as_oci_allows(world, tmp_path):
    """SDK ImageSourceViaObjectStorageUriDetails: sourceType objectStorageUri, sourceUri the object's URL."""
    import oci

    storage, api = world(payg=True)
    ObjectStore(api).upload(COMPARTMENT, "tierzero-images", "talos v1.qcow2", a_file(tmp_path, MIB), part_size=MIB)
    compute = api.client(oci.core.ComputeClient)
    uri = "https://objectstorage.eu-frankfurt-1.oraclecloud.com/n/sandboxns/b/tierzero-images/o/talos%20v1.qcow2"
    made = compute.create_image(oci.core.models.CreateImageDetails(
        compartment_id=COMPARTMENT, display_name="by-uri",
        image_source_details=oci.core.models.ImageSourceViaObjectStorageUriDetails(source_uri=uri, source_image_type="QCOW2"))).data
    assert storage.images[made.id]["sourceObject"] == ["sandboxns", "tierzero-images", "talos v1.qcow2"]
    with pytest.raises(oci.exceptions.ServiceError) as refused:
        compute.create_image(oci.core.models.CreateImageDetails(
            compartment_id=COMPARTMENT, image_source_details=oci.core.models.ImageSourceViaObjectStorageUriDetails(source_uri="https://example.com/disk.qcow2")))
    assert (refused.value.status, refused.value.code) == (400, "InvalidParameter")


def test_two_launches_with_one_display_name_are_two_instances_and_metadata_is_measured_as_sent(world, tmp_path):
    """SDK LaunchInstanceDetails: display_name "Does not have to be unique"; metadata + extendedMetadata
    at most 32,000 bytes, here the JSON-encoded objects (user_data travels base64-encoded)."""
    import base64

    from tierzero.sandbox.oci_compute import launch

    storage, api = world(payg=True)
    ObjectStore(api).upload(COMPARTMENT, "tierzero-images", "talos.vmdk", a_file(tmp_path, MIB), part_size=MIB)
    image = CustomImages(api, poll_seconds=0).import_from_object(COMPARTMENT, "talos", ObjectSource("sandboxns", "tierzero-images", "talos.vmdk"), CAPS)
    details = {"displayName": "cp-1", "shape": "VM.Standard.A1.Flex", "shapeConfig": {"ocpus": 1, "memoryInGBs": 6},
               "sourceDetails": {"sourceType": "image", "imageId": image.id}, "createVnicDetails": {"privateIp": "10.0.1.20"}}
    first, second = launch(storage, details, "10.0.1.0/24"), launch(storage, details, "10.0.1.0/24")
    assert first.status == second.status == 200 and first.body["id"] != second.body["id"]
    assert sorted(storage.launched) == sorted([first.body["id"], second.body["id"]])
    raw = b"x" * 23_000  # 23,000 bytes: under the limit decoded, 30,668 encoded, plus the JSON around it
    fits = launch(storage, {**details, "metadata": {"user_data": base64.b64encode(raw).decode()}}, "10.0.1.0/24")
    assert fits.status == 200
    over = launch(storage, {**details, "metadata": {"user_data": base64.b64encode(raw + b"x" * 1_000).decode()}}, "10.0.1.0/24")
    assert over.status == 400 and over.body["code"] == "InvalidParameter"  # 24,000 decoded is 32,000 encoded: over with its key
    not_base64 = launch(storage, {**details, "metadata": {"user_data": "not base64!"}}, "10.0.1.0/24")
    assert not_base64.status == 200  # the API does not check it; Talos finds no config
