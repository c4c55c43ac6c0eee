"""Cloud step "cloud/host-image": the Debian arm64 custom image the Proxmox VE hosts on A1 instances boot.

OCI has no Debian platform image and Proxmox VE no official arm64 build; the community port PXVIRT installs on
Debian 12/13 arm64 (`tierzero.phases.host_prepare`). So, on the same machinery as the Talos image
(`tierzero.phases.cloud_image`):
1. cloud.oci.host_image.image_ocid, when given, is used as it is;
2. else an image named `tierzero-debian-<release>-<variant>-arm64` already in the compartment is reused
   (nothing is fetched);
3. else the Limits API must leave room for a custom image (`compute/custom-image-count`: 0 on
   Always-Free-only tenancies, or used up): the step stops there, naming the limit and the fix;
4. the image directory's SHA512SUMS is read, its signature checked with gpgv when a keyring is given, the
   qcow2 downloaded and checked against its line (a mismatch deletes it), uploaded to cloud.oci.image_bucket
   within the free Object Storage (an interrupted upload resumes), imported as QCOW2 with UEFI_64 firmware,
   launch mode PARAVIRTUALIZED and shape VM.Standard.A1.Flex (`tierzero.render.debian_image`), and the object
   deleted once the image is AVAILABLE (an imported image no longer reads it).
Its `image_id` becomes the OpenTofu layer's `a1_image_ocid`."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from tierzero.engine.step import Step, StepContext

if TYPE_CHECKING:
    from tierzero.render.debian_image import DebianImage
    from tierzero.spec.models import Platform

STEP = "cloud/host-image"
GIB = 1024**3
NO_ROOM_HINT = ("upgrade the account to Pay As You Go in the OCI console (Billing > Upgrade and Manage Payment): Always Free "
                "resources stay free and the limit is lifted; or delete a custom image you no longer need; or give "
                "cloud.oci.host_image.image_ocid of a Debian 12/13 arm64 image the tenancy already has")


@dataclass(frozen=True)
class HostImageInputs:
    image_ocid: str | None
    suite: str
    variant: str
    mirror: str
    keyring: str | None  # a path relative to the spec's directory
    bucket: str
    compartment: str
    tenancy: str


def wanted(spec: Platform) -> bool:
    """Whether the spec has Proxmox VE hosts on A1 instances (the hosts this image is for)."""
    return spec.oci is not None and spec.has_proxmox and any(n.instance for n in spec.proxmox.nodes)


def _inputs(ctx: StepContext) -> HostImageInputs:
    oci = ctx.spec.oci
    assert oci is not None
    image = oci.host_image
    return HostImageInputs(image.image_ocid, ctx.spec.proxmox.install.suite, image.variant, image.mirror, image.keyring,
                           oci.image_bucket, oci.compartment_ocid or oci.tenancy_ocid, oci.tenancy_ocid)


def _image(inputs: HostImageInputs) -> DebianImage:
    from tierzero.render.debian_image import debian_image

    return debian_image(inputs.suite, inputs.variant, inputs.mirror)  # type: ignore[arg-type]


def _fetch_and_import(ctx: StepContext, inputs: HostImageInputs) -> dict[str, Any]:
    from tierzero.adapters.debian_images import DebianImages, images_base
    from tierzero.adapters.oci import Oci
    from tierzero.adapters.oci_images import CustomImages, ImageCapabilities, ObjectSource
    from tierzero.adapters.oci_object_storage import ObjectStore
    from tierzero.freetier.limits import limits_on

    image = _image(inputs)
    name = image.custom_image_name
    api = Oci.connect(ctx.connections, ctx.spec)
    images = CustomImages(api)
    found = images.find(inputs.compartment, name)
    if found is not None:  # a run killed between the import and the clean-up leaves the object: remove it now
        ObjectStore(api).delete(inputs.bucket, f"{name}.qcow2")
        (ctx.workspace.root / "images" / f"{name}.qcow2").unlink(missing_ok=True)
        return {"image_id": found.id, "name": name, "imported": False}
    images.require_room(inputs.tenancy, what=f"the Debian image for the Proxmox VE hosts ({name})", hint=NO_ROOM_HINT)
    source = DebianImages(images_base(ctx.connections, inputs.mirror))
    try:
        sha512 = source.sums(image)[image.file_name]
        if inputs.keyring:
            keyring = (ctx.workspace.root.parent / inputs.keyring).resolve()
            signature = f"SHA512SUMS signature good by a key in {keyring.name} (gpgv): {source.verify_signature(image, keyring)}"
        else:
            signature = ("SHA512SUMS signature NOT checked (no cloud.oci.host_image.keyring): the image matches the "
                         "checksum Debian publishes, read over HTTPS")
        ctx.log(signature)
        path = source.download(image, ctx.workspace.root / "images" / f"{name}.qcow2", sha512)
    finally:
        source.close()
    store = ObjectStore(api)
    budget = int(limits_on()["object_storage_gb"] * GIB)
    obj = store.upload(inputs.compartment, inputs.bucket, f"{name}.qcow2", path, budget_bytes=budget, on_progress=ctx.log)
    caps = ImageCapabilities(image.source_format, image.launch_mode, image.firmware, image.shapes, "Debian", str(image.release))
    imported = images.import_from_object(inputs.compartment, name, ObjectSource(obj.namespace, obj.bucket, obj.name), caps)
    store.delete(inputs.bucket, obj.name)  # imported: the image no longer reads the object, and it counts toward the 20 GB
    Path(path).unlink(missing_ok=True)
    return {"image_id": imported.id, "name": name, "imported": True, "sha512": sha512, "signature": signature,
            "resumed": obj.resumed, "recipe": image.describe()}


async def _run(ctx: StepContext, inputs: HostImageInputs) -> Mapping[str, Any]:
    if inputs.image_ocid:
        return {"image_id": inputs.image_ocid, "imported": False}
    ctx.wait("the Debian arm64 host image (look-up, or download, upload and import)")
    return await asyncio.to_thread(_fetch_and_import, ctx, inputs)


def host_image_steps(spec: Platform) -> list[Step]:
    """One step when Proxmox VE hosts run on A1 instances; the cloud layer's apply needs it (the hosts boot it)."""
    if not wanted(spec):
        return []
    return [Step(STEP, "cloud", "Debian arm64 image for the Proxmox VE hosts (download, verify, Object Storage, import)",
                 _run, inputs=_inputs, real_only=True)]
