"""Cloud step "cloud/image/<cluster>": the Talos custom image a cluster on A1 instances boots.

The cluster's own image (clusters[].image_ocid) is used as it is. Otherwise: an image of the same name
(release, arch, schematic) already in the compartment is reused; else the Limits API must leave room for a
custom image (an Always-Free-only tenancy has none: the step stops there, before any download or upload,
naming the limit and the fix); then the schematic is registered with the Image Factory (POST /schematics),
the release's oracle artifact downloaded, converted as Talos documents for the release
(`tierzero.render.oci_image`), uploaded to cloud.oci.image_bucket within the free Object Storage (an
interrupted upload resumes), and imported with the documented firmware, launch mode and shape.

The bucket and the image live in cloud.oci.compartment_ocid, or the tenancy's root compartment when the
cloud layer creates the compartment (it does not exist yet when the image is made)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

from tierzero.engine.step import Step, StepContext

if TYPE_CHECKING:
    from tierzero.render.talos.schematic import Arch
    from tierzero.spec.models import Cluster, Platform

GIB = 1024**3


@dataclass(frozen=True)
class ImageInputs:
    cluster: str
    image_ocid: str | None
    factory: str
    schematic: str  # canonical YAML
    talos_version: str
    arch: Arch
    bucket: str
    compartment: str


def _inputs(cluster: Cluster, ctx: StepContext) -> ImageInputs:
    from tierzero.render.talos_spec import schematic

    oci = ctx.spec.oci
    assert oci is not None
    return ImageInputs(cluster.name, cluster.image_ocid, cluster.image_factory, schematic(cluster).canonical_yaml(),
                       cluster.talos_version, cluster.arch, oci.image_bucket, oci.compartment_ocid or oci.tenancy_ocid)


def _blocking(ctx: StepContext, inputs: ImageInputs, schematic_id: str, artifact_path: Any) -> dict[str, Any]:
    from tierzero.adapters.disk_image import decompress_xz, to_qcow2, to_vmdk_stream_optimized
    from tierzero.adapters.oci import Oci
    from tierzero.adapters.oci_images import CustomImages, ImageCapabilities, ObjectSource
    from tierzero.adapters.oci_object_storage import ObjectStore
    from tierzero.freetier.limits import limits_on
    from tierzero.render.oci_image import image_name, image_recipe

    recipe = image_recipe(inputs.talos_version, inputs.arch)
    name = image_name("oracle", inputs.talos_version, inputs.arch, schematic_id)
    api = Oci.connect(ctx.connections, ctx.spec)
    images = CustomImages(api)
    path = artifact_path
    if path.suffix != recipe.object_suffix:  # the file to upload is kept until the import succeeds (see _run)
        if path.name.endswith(".xz"):
            path = decompress_xz(path, path.with_suffix(""))
        if recipe.convert_from == "raw":
            path = to_qcow2(path, path.with_suffix(".qcow2"), src_format="raw")
        elif recipe.convert_from == "qcow2":
            path = to_vmdk_stream_optimized(path, path.with_suffix(".vmdk"))
    store = ObjectStore(api)
    budget = int(limits_on()["object_storage_gb"] * GIB)
    obj = store.upload(inputs.compartment, inputs.bucket, name + recipe.object_suffix, path, budget_bytes=budget,
                       on_progress=lambda text: ctx.log(text))
    caps = ImageCapabilities(recipe.source_format, recipe.launch_mode, recipe.firmware, recipe.shapes, "Talos", inputs.talos_version)
    image = images.import_from_object(inputs.compartment, name, ObjectSource(obj.namespace, obj.bucket, obj.name), caps,
                                      on_wait=lambda what: None)
    for leftover in path.parent.glob(f"{name}.*"):  # imported: the local copies are no longer needed
        leftover.unlink(missing_ok=True)
    return {"image_id": image.id, "name": name, "imported": True, "object": obj.name, "resumed": obj.resumed,
            "schematic": schematic_id, "recipe": recipe.describe()}


def _run(cluster_name: str):
    async def run(ctx: StepContext, inputs: ImageInputs) -> Mapping[str, Any]:
        from tierzero.adapters.image_factory import ImageFactory, factory_url
        from tierzero.adapters.oci import Oci
        from tierzero.adapters.oci_images import CustomImages
        from tierzero.render.oci_image import image_name, image_recipe
        from tierzero.render.talos.schematic import disk_image_url

        if inputs.image_ocid:
            return {"image_id": inputs.image_ocid, "imported": False}
        factory = ImageFactory(factory_url(ctx.connections, inputs.factory), policy=ctx.connections.retry.default, on_retry=ctx.retry)
        try:
            schematic_id = await factory.register(inputs.schematic)
            name = image_name("oracle", inputs.talos_version, inputs.arch, schematic_id)
            images = CustomImages(Oci.connect(ctx.connections, ctx.spec))
            found = await asyncio.to_thread(images.find, inputs.compartment, name)
            if found is not None:
                return {"image_id": found.id, "name": name, "imported": False, "schematic": schematic_id}
            oci = ctx.spec.oci
            assert oci is not None
            await asyncio.to_thread(images.require_room, oci.tenancy_ocid)  # before anything is downloaded or uploaded
            recipe = image_recipe(inputs.talos_version, inputs.arch)
            fmt = recipe.artifact.split(".", 1)[1]
            ready = ctx.workspace.root / "images" / f"{name}{recipe.object_suffix}"
            if ready.exists():  # made by a run that was interrupted: an upload resumes only with the same bytes
                artifact = ready
            else:
                url = disk_image_url(schematic_id, inputs.talos_version, inputs.arch, platform="oracle", fmt=fmt, base=factory.base_url)
                ctx.wait(f"the download of {recipe.artifact} for {inputs.cluster}")
                artifact = await factory.download(url, ctx.workspace.root / "images" / f"{name}.{fmt}")
        finally:
            factory.close()
        ctx.wait(f"the upload and import of {name}")
        return await asyncio.to_thread(_blocking, ctx, inputs, schematic_id, artifact)

    return run


def kept_after_destroy(outputs: Mapping[str, Any], bucket: str, compartment: str) -> str | None:
    """What `destroy` leaves of an image step, and the commands that remove it; None for the user's own image.

    Kept on purpose: the image and its object cost nothing within the free 20 GB of Object Storage (a Talos
    oracle image is well under 1 GB), and a later deploy of the same release and schematic reuses them instead
    of downloading, uploading and importing again. Commands: OCI CLI `oci compute image delete --image-id`,
    `oci os object delete --bucket-name --object-name` (docs.oracle.com/iaas/tools/oci-cli)."""
    image_id, name = outputs.get("image_id"), outputs.get("name")
    if not image_id or not name:  # clusters[].image_ocid: the user's image, never touched
        return None
    obj = outputs.get("object")
    objects = f" and the object {bucket}/{obj} it was imported from" if obj else ""
    remove = f"`oci compute image delete --image-id {image_id} --force`"
    if obj:
        remove += f" and `oci os object delete --bucket-name {bucket} --object-name {obj} --force`"
    return (f"kept the custom image {name} ({image_id}){objects} in compartment {compartment}: free within the 20 GB of "
            f"Always Free Object Storage, and a later deploy reuses them instead of uploading again; to remove them: {remove}")


def _destroy(cluster_name: str):
    async def destroy(ctx: StepContext) -> Mapping[str, Any]:
        oci = ctx.spec.oci
        assert oci is not None
        from tierzero.render.oci_image import image_recipe

        outputs = dict(ctx.outputs.get(f"cloud/image/{cluster_name}") or {})
        if outputs.get("name") and not outputs.get("object"):  # reused by name: its object is named the same way
            cluster = ctx.spec.cluster(cluster_name)
            outputs["object"] = outputs["name"] + image_recipe(cluster.talos_version, cluster.arch).object_suffix
        note = kept_after_destroy(outputs, oci.image_bucket, oci.compartment_ocid or oci.tenancy_ocid)
        if note is not None:
            ctx.log(note, level="notice")
        return {"kept": note is not None}

    return destroy


def image_steps(spec: Platform) -> list[Step]:
    """One step per cluster on A1 instances; the cloud layer's apply needs them (the instances boot the image).
    `destroy` keeps the image and its object and says how to remove them (`kept_after_destroy`)."""
    import functools

    return [Step(f"cloud/image/{c.name}", "cloud", f"Talos {c.talos_version} image for {c.name} on OCI (Object Storage, import)",
                 _run(c.name), inputs=functools.partial(_inputs, c), real_only=True, destroy=_destroy(c.name))
            for c in spec.clusters if c.on_instances]
