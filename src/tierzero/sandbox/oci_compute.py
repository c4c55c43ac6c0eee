"""The OCI stand-in's LaunchInstance for instances that boot a custom image (`STANDIN`, "oci-compute", after
"talos"): the sandbox's OpenTofu twin launches each Talos instance here, as the provider would, and an
instance whose image holds a sandbox Talos image boots a Talos machine (`tierzero.sandbox.talos`) that reads
its machine config from the instance's `metadata.user_data`.

Rules, each with its source:
- A flexible shape without shapeConfig is 400 InvalidParameter "Invalid ShapeConfig: null (Cannot launch
  flexible instance without ShapeConfig)" (oracle-quickstart/oci-elastic issue 18; research/oci.md §2.2).
- An image that lacks the shape is 400 InvalidParameter "Shape VM.Standard.A1.Flex is not valid for image
  <ocid>." (hitrov/oci-arm-host-capacity issue 59; research §2.2). An image that is not AVAILABLE cannot be
  launched (SDK core/models/image.py lifecycle states; the exact message: not found).
- "The combined size of the metadata and extendedMetadata objects can be a maximum of 32,000 bytes" (OCI API
  reference and SDK LaunchInstanceDetails.metadata): measured on the objects as sent, JSON-encoded, so on
  `user_data` as it travels, base64-encoded; over it: 400 InvalidParameter (the exact text: not found).
- `user_data` is the caller's "base64-encoded data to be used by Cloud-Init" (LaunchInstanceDetails.metadata);
  the API documents no check of it, so the stand-in accepts any string. Talos' oracle platform base64-decodes
  it from /opc/v2/instance/metadata/user_data (siderolabs/talos platform/oracle/oracle.go Configuration,
  base64.StdEncoding.DecodeString) and gets no config when that fails: the node waits in maintenance mode.
  It takes eth0's address from /opc/v2/vnics/ (oracle.go, metadata.go); the VNIC's private IP is the one asked
  for in createVnicDetails.privateIp (SDK CreateVnicDetails.private_ip).
- Every launch is a new instance with its own OCID: displayName is "A user-friendly name. Does not have to be
  unique" (SDK LaunchInstanceDetails.display_name), so a second launch with the same name is a second instance.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import json
import uuid
from typing import Any

from tierzero.sandbox import oci as oci_standin
from tierzero.sandbox import talos
from tierzero.sandbox.context import SandboxContext, StandIn, Stop
from tierzero.sandbox.image_factory import parse_image
from tierzero.sandbox.oci_storage import NAMESPACE, OciStorage, Reply, _error

FLEX_SHAPES = ("VM.Standard.A1.Flex", "VM.Standard.E4.Flex", "VM.Standard.E5.Flex")
METADATA_MAX_BYTES = 32000


def launch(storage: OciStorage, details: dict[str, Any], subnet_cidr: str, boot: Any = None) -> Reply:
    """Validate and record the instance; `boot(instance, image_meta, user_data, network_config)` runs its OS."""
    shape = details.get("shape")
    if shape in FLEX_SHAPES and not details.get("shapeConfig"):
        return _error(400, "InvalidParameter", "Invalid ShapeConfig: null (Cannot launch flexible instance without ShapeConfig)")
    source = details.get("sourceDetails") or {}
    image = storage.image(str(source.get("imageId") or ""))
    if image is None:
        return _error(404, "NotAuthorizedOrNotFound", f"image {source.get('imageId')} not found")
    if image["lifecycleState"] != "AVAILABLE":
        return _error(409, "IncorrectState", f"image {image['id']} is {image['lifecycleState']}")
    if shape not in storage.shapes.get(image["id"], []):
        return _error(400, "InvalidParameter", f"Shape {shape} is not valid for image {image['id']}.")
    metadata = details.get("metadata") or {}
    sent = json.dumps(metadata, separators=(",", ":")).encode() + json.dumps(details.get("extendedMetadata") or {}, separators=(",", ":")).encode()
    if len(sent) > METADATA_MAX_BYTES:
        return _error(400, "InvalidParameter", f"The combined size of the metadata and extendedMetadata objects can be a maximum of {METADATA_MAX_BYTES:,} bytes")
    try:
        user_data = base64.b64decode(metadata.get("user_data") or "", validate=True) or None
    except (binascii.Error, ValueError):
        user_data = None  # Talos' decode fails: no config (oracle.go), the instance still launches
    vnic = details.get("createVnicDetails") or {}
    name = details.get("displayName") or vnic.get("hostnameLabel") or "instance"
    ocid = f"ocid1.instance.oc1..sandbox-{uuid.uuid4().hex[:24]}"
    instance = {"id": ocid, "displayName": name, "shape": shape, "lifecycleState": "RUNNING", "imageId": image["id"],
                "availabilityDomain": details.get("availabilityDomain"), "compartmentId": details.get("compartmentId"),
                "shapeConfig": details.get("shapeConfig"), "privateIp": vnic.get("privateIp"), "hostname": vnic.get("hostnameLabel")}
    storage.launched[ocid] = instance
    ns, bucket, obj = image["sourceObject"]
    stored = storage.objects.get((bucket, obj)) if ns == NAMESPACE else None
    meta = parse_image(stored.data) if stored is not None else None
    if boot is not None and meta is not None and vnic.get("privateIp"):
        net = ipaddress.ip_network(subnet_cidr)
        mac = "02:00:17:" + ":".join(f"{b:02x}" for b in hashlib.sha256(ocid.encode()).digest()[:3])
        network = [{"type": "physical", "name": "eth0", "mac_address": mac,
                    "subnets": [{"type": "static", "address": vnic["privateIp"], "netmask": str(net.netmask),
                                 "gateway": str(net.network_address + 1)}]}]
        boot(instance, dict(meta), user_data, network, mac)
    return Reply(200, instance)


def _start(box: SandboxContext) -> Stop:
    oci = box.spec.oci
    server = box.get(oci_standin.SERVER) if oci is not None else None
    if server is None or oci is None:
        return lambda: None
    machines = box[talos.MACHINES]

    def boot(instance: dict[str, Any], image: dict[str, Any], user_data: bytes | None, network: list[dict[str, Any]], mac: str) -> None:
        machines.boot(f"oci/{instance['id']}", disk=instance["imageId"], image=image, macs=[mac], user_data=user_data,
                      network_config=network, hostname=instance.get("hostname"))

    subnet = oci.network.subnet_cidr
    def launcher(details: dict[str, Any]) -> Reply:
        reply = launch(server.state.storage, details, subnet, boot)
        if reply.status == 200 and server.state.storage.persist is not None:
            server.state.storage.persist()
        return reply

    server.state.launcher = launcher
    return lambda: None


STANDIN = StandIn("oci-compute", _start)
