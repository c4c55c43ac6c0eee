"""OCI custom images through the official SDK: is there room for one (the Limits API), is it already there
(by display name), and import one from an Object Storage object with given capabilities.

    images = CustomImages(Oci.connect(connections, spec))
    images.require_room(compartment_id)                       # before anything is uploaded
    found = images.find(compartment_id, name) or images.import_from_object(compartment_id, source, capabilities)

Facts, with their sources (OCI Python SDK 2.x):
- Limits: `LimitsClient.get_resource_availability("compute", "custom-image-count", compartment_id)` answers
  `available` (GET /20190729/services/compute/limits/custom-image-count/resourceAvailability,
  oci/limits/limits_client.py). Always-Free-only tenancies have custom-image-count = 0 (third-party notes
  measured 2026-07-01 and 2026-10-08; no Oracle page states it): an import fails there.
- CreateImage: POST /20160918/images with `imageSourceDetails` (`sourceType: objectStorageTuple`,
  `sourceImageType` QCOW2 | VMDK, `operatingSystem`, `operatingSystemVersion`) and `launchMode`; the image is
  IMPORTING until its work request (header `opc-work-request-id`) SUCCEEDED, then AVAILABLE
  (oci/core/compute_client.py create_image; oci/work_requests/models/work_request.py statuses).
- Firmware is an image capability (`Compute.Firmware`), set through
  POST /20160918/computeImageCapabilitySchemas against the current global schema version
  (`ComputeGlobalImageCapabilitySchema.current_version_name`).
- A shape is added with PUT /20160918/images/{id}/shapes/{shape}; launching a shape the image lacks is
  400 InvalidParameter "Shape … is not valid for image …".
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

from tierzero.adapters.oci import Oci, translated
from tierzero.errors import OperationError, RefusedError

CUSTOM_IMAGE_LIMIT = ("compute", "custom-image-count")
UPGRADE_HINT = ("upgrade the account to Pay As You Go in the OCI console (Billing > Upgrade and Manage Payment): Always Free "
                "resources stay free and the limit is lifted; or give an image you already have (clusters[].image_ocid)")


@dataclass(frozen=True)
class ImageCapabilities:
    """What the imported image declares: how OCI boots it and which shapes may run it."""

    source_format: str  # QCOW2 | VMDK
    launch_mode: str  # PARAVIRTUALIZED | NATIVE | EMULATED
    firmware: str  # UEFI_64 | BIOS
    shapes: tuple[str, ...]
    operating_system: str
    operating_system_version: str


@dataclass(frozen=True)
class ObjectSource:
    namespace: str
    bucket: str
    object: str


@dataclass(frozen=True)
class CustomImage:
    id: str
    display_name: str
    state: str
    imported: bool = False  # this call imported it (False: it was already there)


class CustomImages:
    """Polls start every `poll_seconds` and double up to 15 s (an import takes minutes; a stand-in answers at once)."""

    def __init__(self, oci_api: Oci, *, poll_seconds: float = 0.2, timeout_seconds: float = 2 * 3600.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        import oci

        self._oci = oci_api
        self.compute = oci_api.client(oci.core.ComputeClient)
        self.poll_seconds, self.timeout_seconds, self.sleep = poll_seconds, timeout_seconds, sleep

    def custom_image_room(self, compartment_id: str) -> int:
        """How many more custom images the tenancy may hold (the Limits API's `available`)."""
        import oci

        client = self._oci.client(oci.limits.LimitsClient)
        service, limit = CUSTOM_IMAGE_LIMIT
        with translated(f"OCI Limits API {service}/{limit}"):
            return int(client.get_resource_availability(service, limit, compartment_id).data.available or 0)

    def require_room(self, compartment_id: str, *, what: str = "the Talos image", hint: str = UPGRADE_HINT) -> None:
        """RefusedError naming the limit and the fix when no custom image can be created (the limit is 0, or the
        tenancy already holds as many as it allows): the check that comes before anything is downloaded or uploaded."""
        room = self.custom_image_room(compartment_id)
        if room < 1:
            raise RefusedError(
                f"the tenancy's service limit {CUSTOM_IMAGE_LIMIT[0]}/{CUSTOM_IMAGE_LIMIT[1]} leaves room for {room} more "
                f"custom images (it is 0 on Always-Free-only accounts, and used up when the tenancy holds as many as it allows), "
                f"so {what} cannot be imported; nothing was uploaded",
                hint=hint)

    def find(self, compartment_id: str, display_name: str) -> CustomImage | None:
        """A custom image of that name that is AVAILABLE (or still IMPORTING), newest first."""
        import oci

        with translated(f"OCI images named {display_name}"):
            items = oci.pagination.list_call_get_all_results(
                self.compute.list_images, compartment_id, display_name=display_name, sort_by="TIMECREATED", sort_order="DESC").data
        for image in items:
            if image.lifecycle_state in ("AVAILABLE", "IMPORTING", "PROVISIONING"):
                return CustomImage(image.id, image.display_name, image.lifecycle_state)
        return None

    def import_from_object(self, compartment_id: str, display_name: str, source: ObjectSource, caps: ImageCapabilities,
                           *, on_wait: Callable[[str], None] | None = None) -> CustomImage:
        """CreateImage from the object, wait for its work request, then set firmware and shapes. Returns the
        AVAILABLE image. An import that fails raises OperationError with the work request's errors."""
        import oci

        models = oci.core.models
        details = models.CreateImageDetails(
            compartment_id=compartment_id, display_name=display_name, launch_mode=caps.launch_mode,
            freeform_tags={"tierzero": "image"},
            image_source_details=models.ImageSourceViaObjectStorageTupleDetails(
                namespace_name=source.namespace, bucket_name=source.bucket, object_name=source.object,
                source_image_type=caps.source_format, operating_system=caps.operating_system,
                operating_system_version=caps.operating_system_version))
        with translated(f"OCI import of {display_name}"):
            response = self.compute.create_image(details, opc_retry_token=display_name[:64])
        image_id, work_request = response.data.id, response.headers.get("opc-work-request-id")
        if on_wait:
            on_wait(f"the import of {display_name} (work request {work_request})")
        if work_request:
            self._wait_work_request(work_request, display_name)
        image = self._wait_available(image_id, display_name)
        self.set_capabilities(compartment_id, image_id, caps)
        return CustomImage(image_id, display_name, image, imported=True)

    def _wait_work_request(self, work_request_id: str, what: str) -> None:
        import oci

        client = self._oci.client(oci.work_requests.WorkRequestClient)
        deadline, delay = time.monotonic() + self.timeout_seconds, self.poll_seconds
        while True:
            with translated(f"OCI work request of {what}"):
                status = client.get_work_request(work_request_id).data.status
            if status == "SUCCEEDED":
                return
            if status in ("FAILED", "CANCELED"):
                with translated(f"OCI work request errors of {what}"):
                    errors = client.list_work_request_errors(work_request_id).data
                text = "; ".join(f"{e.code}: {e.message}" for e in errors) or status
                raise OperationError(f"the import of {what} {status.lower()}: {text}",
                                     hint="check the object is a QCOW2/VMDK disk image and the source format matches it")
            if time.monotonic() > deadline:
                raise OperationError(f"the import of {what} is still {status} after {self.timeout_seconds:g}s",
                                     hint="OCI imports can take long; run the deploy again later: it waits for the same image")
            self.sleep(delay)
            delay = min(delay * 2, 15.0)

    def _wait_available(self, image_id: str, what: str) -> str:
        deadline, delay = time.monotonic() + self.timeout_seconds, self.poll_seconds
        while True:
            with translated(f"OCI image {what}"):
                state = self.compute.get_image(image_id).data.lifecycle_state
            if state == "AVAILABLE":
                return str(state)
            if state in ("DISABLED", "DELETED") or time.monotonic() > deadline:
                raise OperationError(f"image {what} is {state}", hint="delete it in the console and run the deploy again")
            self.sleep(delay)
            delay = min(delay * 2, 15.0)

    def set_capabilities(self, compartment_id: str, image_id: str, caps: ImageCapabilities) -> None:
        """Firmware through an image capability schema, and every shape in `caps.shapes` (idempotent)."""
        import oci

        with translated("OCI image capabilities"):
            schemas = self.compute.list_compute_global_image_capability_schemas().data
            version = schemas[0].current_version_name if schemas else None
            if version is not None:
                descriptor = oci.core.models.EnumStringImageCapabilitySchemaDescriptor(
                    source="IMAGE", values=[caps.firmware], default_value=caps.firmware)
                self.compute.create_compute_image_capability_schema(oci.core.models.CreateComputeImageCapabilitySchemaDetails(
                    compartment_id=compartment_id, image_id=image_id, display_name=f"{image_id[-12:]}-firmware",
                    compute_global_image_capability_schema_version_name=version,
                    schema_data={"Compute.Firmware": descriptor}))
            for shape in caps.shapes:
                self.compute.add_image_shape_compatibility_entry(image_id, shape)

    def shapes(self, image_id: str) -> list[str]:
        import oci

        with translated("OCI image shapes"):
            return [e.shape for e in oci.pagination.list_call_get_all_results(self.compute.list_image_shape_compatibility_entries, image_id).data]

    def describe(self, image_id: str) -> dict[str, Any]:
        with translated("OCI image"):
            image = self.compute.get_image(image_id).data
        return {"id": image.id, "name": image.display_name, "state": image.lifecycle_state, "launch_mode": image.launch_mode,
                "firmware": getattr(image.launch_options, "firmware", None) if image.launch_options else None}
