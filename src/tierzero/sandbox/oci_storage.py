"""The OCI stand-in's Object Storage, custom images, their work requests and the Limits API, as the official
SDK speaks to them (served by `tierzero.sandbox.oci`). One namespace, one tenancy, thread-safe: the SDK's
UploadManager sends up to three parts at once.

It starts as a tenancy fresh from sign-up: no bucket, no object, no custom image, and the service limit
`compute/custom-image-count` = 0 of an Always-Free-only account unless it is told the account was upgraded
(`payg=True`; in the sandbox: when the spec declares cloud.oci.account: pay-as-you-go, the account the user
says they have; tierzero itself still asks the Limits API and stops when there is no room).

Rules, each with its source (SDK = OCI Python SDK 2.x `oci/`; research = /work/research/oci.md §1-2 as read):
- GET /n answers the namespace as a JSON string. SDK object_storage_client.get_namespace (response_type str).
- HEAD of a missing bucket or object is 404 with no body. SDK behaviour verified against a local server
  (research §1.5: ServiceError(status=404, code=None)).
- Creating a bucket that exists is 409 BucketAlreadyExists. research §1.5 (real opc-request-id shown).
- UploadPart needs `uploadId` and `uploadPartNum`, answers `etag` and `opc-content-md5` (the SDK reads both by
  key), and requires no Content-MD5 (UploadManager sends none). SDK upload_part; research §1.2-1.3.
- CommitMultipartUpload: every uploaded part must be in partsToCommit or partsToExclude, not both, with its
  etag; the object's `opc-multipart-md5` is base64(md5(part md5s)) + "-N". SDK CommitMultipartUploadDetails;
  Oracle "Using multipart uploads" (research §1.1).
- ListMultipartUploadParts pages with `limit`/`page` and `opc-next-page`. SDK list_multipart_upload_parts.
- Limits: resourceAvailability of compute/custom-image-count is `available` = limit - used; 0 on an
  Always-Free-only tenancy (research §2.3, third-party measurements 2026-07-01, 2026-10-08). The value on an
  upgraded account was not found; 25 stands for "some room" here (tierzero only tests `available > 0`).
- CreateImage over the limit is 400 LimitExceeded "The following service limits were exceeded:
  custom-image-count." (the message form of the A1 LimitExceeded errors, research §9; this exact case: not found).
- CreateImage from an object that does not exist: the work request FAILED (the import reads the object
  asynchronously; research §2.1). A created image is IMPORTING until its work request SUCCEEDED, then
  AVAILABLE; the work request advances one state per poll (ACCEPTED, IN_PROGRESS, SUCCEEDED). SDK
  core/models/image.py, work_requests/models/work_request.py.
- CreateImage imports from an object named either way the API offers: `objectStorageTuple` (namespace, bucket,
  object) or `objectStorageUri` (`sourceUri`, the object's URL `https://objectstorage.<region>.oraclecloud.com
  [/p/<par>]/n/<ns>/b/<bucket>/o/<object>`); `sourceImageType`, when given, is QCOW2 or VMDK. SDK
  ImageSourceViaObjectStorageTupleDetails, ImageSourceViaObjectStorageUriDetails, ImageSourceDetails.source_image_type.
- A capability schema names the current global schema version; the firmware is UEFI_64 or BIOS. SDK
  create_compute_image_capability_schema, LaunchOptions.firmware.

Error codes and statuses are OCI's (API reference, "API Errors": 400 InvalidParameter, 400 LimitExceeded,
404 NotAuthorizedOrNotFound "Authorization failed or requested resource not found.", 409 IncorrectState,
409 BucketAlreadyExists); a message not quoted with a source above is the stand-in's own wording (the real
text was not found), so neither tierzero nor a test may depend on it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

NAMESPACE = "sandboxns"
GLOBAL_SCHEMA_VERSION = "02b83c1f-a4db-4867-80df-d50d50f3b759"  # the version name the provider's own test uses
PAYG_CUSTOM_IMAGES = 25
FIRMWARES = ("UEFI_64", "BIOS")


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _md5_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()  # noqa: S324 (the protocol's checksum)


@dataclass
class Reply:
    status: int
    body: Any = None  # JSON-able, bytes, or None (no body)
    headers: dict[str, str] = field(default_factory=dict)


def _error(status: int, code: str, message: str) -> Reply:
    return Reply(status, {"code": code, "message": message})


@dataclass
class StoredObject:
    data: bytes
    metadata: dict[str, str]
    etag: str
    md5_header: tuple[str, str]  # ("content-md5", …) or ("opc-multipart-md5", …)


class OciStorage:
    """State and routes. `route(...)` answers a request or returns None for paths it does not serve."""

    def __init__(self, *, payg: bool = False, compartment: str = "ocid1.compartment.oc1..sandbox") -> None:
        self.lock = threading.RLock()
        self.payg = payg
        self.compartment = compartment
        self.buckets: dict[str, dict[str, Any]] = {}
        self.objects: dict[tuple[str, str], StoredObject] = {}
        self.uploads: dict[str, dict[str, Any]] = {}  # uploadId -> {bucket, object, metadata, parts: {n: (etag, md5, data)}}
        self.images: dict[str, dict[str, Any]] = {}
        self.shapes: dict[str, list[str]] = {}
        self.work_requests: dict[str, dict[str, Any]] = {}
        self.launched: dict[str, dict[str, Any]] = {}  # instances launched from custom images, by OCID
        self.part_puts = 0  # UploadPart requests answered 200 (a resumed upload sends only the missing parts)
        self.broken_parts: set[int] = set()  # test fault: these part numbers answer 503 (a dropped upload)
        self.persist: Any = None  # called after every change a client could see (the sandbox world)
        self._seq = 0

    # ---------------------------------------------------------------- the world document

    def snapshot(self) -> dict[str, Any]:
        def b64(data: bytes) -> str:
            return base64.b64encode(data).decode()

        return {
            "version": 1, "payg": self.payg, "seq": self._seq, "buckets": self.buckets,
            "objects": [[b, n, b64(o.data), o.metadata, o.etag, list(o.md5_header)] for (b, n), o in self.objects.items()],
            "uploads": {uid: dict(u, parts={str(n): [e, m, b64(d)] for n, (e, m, d) in u["parts"].items()}) for uid, u in self.uploads.items()},
            "images": self.images, "shapes": self.shapes, "work_requests": self.work_requests, "launched": self.launched,
        }

    def restore(self, doc: dict[str, Any]) -> None:
        """What a saved world holds (the account type stays as started: it is the tenancy's, not the world's)."""
        if doc.get("version") != 1:
            return
        self._seq = int(doc["seq"])
        self.buckets = doc["buckets"]
        self.objects = {(b, n): StoredObject(base64.b64decode(d), meta, etag, (h[0], h[1])) for b, n, d, meta, etag, h in doc["objects"]}
        self.uploads = {uid: dict(u, parts={int(n): (e, m, base64.b64decode(d)) for n, (e, m, d) in u["parts"].items()})
                        for uid, u in doc["uploads"].items()}
        self.images, self.shapes = doc["images"], doc["shapes"]
        self.work_requests, self.launched = doc["work_requests"], doc["launched"]

    # ---------------------------------------------------------------- helpers

    def _id(self, kind: str) -> str:
        self._seq += 1
        return f"ocid1.{kind}.oc1..sandbox{self._seq:06d}"

    @property
    def custom_image_limit(self) -> int:
        return PAYG_CUSTOM_IMAGES if self.payg else 0

    def custom_images_used(self) -> int:
        return sum(1 for i in self.images.values() if i["lifecycleState"] != "DELETED")

    def bytes_used(self) -> int:
        return sum(len(o.data) for o in self.objects.values())

    def image(self, image_id: str) -> dict[str, Any] | None:
        return self.images.get(image_id)

    # ---------------------------------------------------------------- routing

    def route(self, method: str, path: str, query: str, headers: Any, body: bytes) -> Reply | None:
        q = {k: v[-1] for k, v in parse_qs(query).items()}
        parts = [unquote(p) for p in path.strip("/").split("/")]
        with self.lock:
            reply: Reply | None = None
            if parts[0] == "n":
                reply = self._object_storage(method, parts[1:], q, headers, body)
            elif path.startswith("/20190729/"):
                reply = self._limits(method, parts, q)
            elif path.startswith("/20160918/") and parts[1] in ("images", "workRequests", "computeGlobalImageCapabilitySchemas",
                                                                 "computeImageCapabilitySchemas"):
                reply = self._compute(method, parts[1:], q, body)
            if reply is not None and self.persist is not None and (method != "GET" or parts[1:2] == ["workRequests"]):
                self.persist()  # before the answer goes out: a client never sees what a restart would lose
        return reply

    # ---------------------------------------------------------------- Object Storage

    def _object_storage(self, method: str, p: list[str], q: dict[str, str], headers: Any, body: bytes) -> Reply:
        if not p:
            return Reply(200, NAMESPACE)
        if p[0] != NAMESPACE:
            return _error(404, "NamespaceNotFound", "You do not have authorization to perform this request, or the requested resource could not be found.")
        if len(p) == 2 and p[1] == "b":
            if method == "POST":
                return self._create_bucket(json.loads(body or b"{}"))
            return Reply(200, [{"namespace": NAMESPACE, "name": n, "compartmentId": b["compartmentId"], "createdBy": "sandbox",
                                "timeCreated": b["timeCreated"], "etag": b["etag"]} for n, b in sorted(self.buckets.items())])
        if len(p) < 3 or p[1] != "b":
            return _error(404, "NotFound", "no such path")
        bucket = p[2]
        if bucket not in self.buckets:
            return Reply(404) if method == "HEAD" else _error(
                404, "BucketNotFound", f"Either the bucket named '{bucket}' does not exist in the namespace '{NAMESPACE}' or you are not authorized to access it")
        if len(p) == 3:
            if method == "HEAD":
                return Reply(200, None, {"etag": self.buckets[bucket]["etag"]})
            size = sum(len(o.data) for (b, _), o in self.objects.items() if b == bucket)
            data = dict(self.buckets[bucket], approximateSize=size if "approximateSize" in q.get("fields", "") else None)
            return Reply(200, data)
        kind, rest = p[3], "/".join(p[4:])
        if kind == "o":
            return self._object(method, bucket, rest, headers, body)
        if kind == "u":
            return self._multipart(method, bucket, rest, q, headers, body)
        return _error(404, "NotFound", "no such path")

    def _create_bucket(self, details: dict[str, Any]) -> Reply:
        name = details.get("name", "")
        if name in self.buckets:
            return _error(409, "BucketAlreadyExists", f"Either the bucket '{name}' in namespace '{NAMESPACE}' already exists or you are not authorized to create it")
        bucket = {"namespace": NAMESPACE, "name": name, "compartmentId": details.get("compartmentId"), "createdBy": "sandbox",
                  "timeCreated": _now(), "etag": hashlib.sha1(name.encode()).hexdigest(),  # noqa: S324
                  "publicAccessType": details.get("publicAccessType", "NoPublicAccess"), "storageTier": details.get("storageTier", "Standard"),
                  "versioning": "Disabled", "objectEventsEnabled": False, "replicationEnabled": False, "isReadOnly": False}
        self.buckets[name] = bucket
        return Reply(200, bucket, {"etag": bucket["etag"], "location": f"/n/{NAMESPACE}/b/{name}"})

    def _object(self, method: str, bucket: str, name: str, headers: Any, body: bytes) -> Reply:
        key = (bucket, name)
        if method == "PUT":
            meta = {k.lower(): v for k, v in headers.items() if k.lower().startswith("opc-meta-")}
            md5 = _md5_b64(body)
            sent = headers.get("Content-MD5")
            if sent and sent != md5:
                return _error(400, "InvalidParameter", f"The computed MD5 of the request body ({md5}) does not match the Content-MD5 header ({sent})")
            self.objects[key] = StoredObject(body, meta, hashlib.sha1(body).hexdigest(), ("content-md5", md5))  # noqa: S324
            return Reply(200, None, {"etag": self.objects[key].etag, "opc-content-md5": md5, "last-modified": _now()})
        obj = self.objects.get(key)
        if obj is None:
            return Reply(404) if method == "HEAD" else _error(404, "ObjectNotFound", f"The object '{name}' was not found in the bucket '{bucket}'")
        if method == "DELETE":
            del self.objects[key]
            return Reply(204)
        out = {"etag": obj.etag, "content-length": str(len(obj.data)), obj.md5_header[0]: obj.md5_header[1], **obj.metadata}
        return Reply(200, None if method == "HEAD" else obj.data, out)

    def _multipart(self, method: str, bucket: str, name: str, q: dict[str, str], headers: Any, body: bytes) -> Reply:
        if not name:  # /u: create, or list in-progress uploads
            if method == "POST":
                details = json.loads(body or b"{}")
                upload_id = self._id("upload").rsplit(".", 1)[-1]
                meta = {k if k.startswith("opc-meta-") else f"opc-meta-{k}": v for k, v in (details.get("metadata") or {}).items()}
                self.uploads[upload_id] = {"bucket": bucket, "object": details["object"], "metadata": meta, "parts": {}, "timeCreated": _now()}
                return Reply(200, {"namespace": NAMESPACE, "bucket": bucket, "object": details["object"], "uploadId": upload_id,
                                   "timeCreated": self.uploads[upload_id]["timeCreated"], "storageTier": "Standard"},
                             {"location": f"/n/{NAMESPACE}/b/{bucket}/u/{details['object']}"})
            return Reply(200, [{"namespace": NAMESPACE, "bucket": bucket, "object": u["object"], "uploadId": uid,
                                "timeCreated": u["timeCreated"], "storageTier": "Standard"}
                               for uid, u in self.uploads.items() if u["bucket"] == bucket])
        upload = self.uploads.get(q.get("uploadId", ""))
        if upload is None or upload["object"] != name or upload["bucket"] != bucket:
            return _error(404, "NoSuchUpload", f"The upload ID '{q.get('uploadId')}' was not found for object '{name}'")
        if method == "PUT":
            if "uploadPartNum" not in q:
                return _error(400, "MissingParameter", "uploadPartNum is required")
            number = int(q["uploadPartNum"])
            if not 1 <= number <= 10000:
                return _error(400, "InvalidParameter", "uploadPartNum must be between 1 and 10000")
            if number in self.broken_parts:
                return _error(503, "ServiceUnavailable", "the sandbox dropped this part (a test fault)")
            md5 = _md5_b64(body)
            etag = hashlib.sha1(body + str(number).encode()).hexdigest()  # noqa: S324
            upload["parts"][number] = (etag, md5, body)
            self.part_puts += 1
            return Reply(200, None, {"etag": etag, "opc-content-md5": md5})
        if method == "GET":
            numbers = sorted(upload["parts"])
            start = int(q.get("page") or 0)
            limit = int(q.get("limit") or 1000)
            page = numbers[start:start + limit]
            items = [{"partNumber": n, "etag": upload["parts"][n][0], "md5": upload["parts"][n][1], "size": len(upload["parts"][n][2])} for n in page]
            extra = {"opc-next-page": str(start + limit)} if start + limit < len(numbers) else {}
            return Reply(200, items, extra)
        if method == "DELETE":
            del self.uploads[q["uploadId"]]
            return Reply(204)
        return self._commit(q["uploadId"], upload, json.loads(body or b"{}"))

    def _commit(self, upload_id: str, upload: dict[str, Any], details: dict[str, Any]) -> Reply:
        commit = {int(p["partNum"]): p.get("etag") for p in details.get("partsToCommit") or []}
        exclude = {int(p["partNum"]) for p in details.get("partsToExclude") or []}
        uploaded = set(upload["parts"])
        if commit.keys() & exclude or uploaded - (commit.keys() | exclude) or (commit.keys() | exclude) - uploaded:
            return _error(400, "InvalidParameter", "Each part created for this upload must be in either partsToExclude or partsToCommit, but cannot be in both")
        for number, etag in commit.items():
            if upload["parts"][number][0] != etag:
                return _error(400, "InvalidParameter", f"The etag of part {number} does not match")
        numbers = sorted(commit)
        data = b"".join(upload["parts"][n][2] for n in numbers)
        digest = hashlib.md5(b"".join(base64.b64decode(upload["parts"][n][1]) for n in numbers)).digest()  # noqa: S324
        multipart_md5 = f"{base64.b64encode(digest).decode()}-{len(numbers)}"
        obj = StoredObject(data, dict(upload["metadata"]), hashlib.sha1(data).hexdigest(), ("opc-multipart-md5", multipart_md5))  # noqa: S324
        self.objects[(upload["bucket"], upload["object"])] = obj
        del self.uploads[upload_id]
        return Reply(200, None, {"opc-multipart-md5": multipart_md5, "etag": obj.etag, "last-modified": _now()})

    # ---------------------------------------------------------------- Limits API

    def _limits(self, method: str, parts: list[str], q: dict[str, str]) -> Reply:
        if parts[1:] == ["services", "compute", "limits", "custom-image-count", "resourceAvailability"]:
            used = self.custom_images_used()
            available = max(0, self.custom_image_limit - used)
            return Reply(200, {"used": used, "available": available, "fractionalUsage": None, "fractionalAvailability": None})
        if parts[1:] == ["limitValues"]:
            values = [{"name": "custom-image-count", "scopeType": "REGION", "availabilityDomain": None, "value": self.custom_image_limit}]
            if q.get("name"):
                values = [v for v in values if v["name"] == q["name"]]
            return Reply(200, values if q.get("serviceName", "compute") == "compute" else [])
        return _error(404, "NotAuthorizedOrNotFound", "no such limit")

    # ---------------------------------------------------------------- images, work requests, capabilities

    def _compute(self, method: str, p: list[str], q: dict[str, str], body: bytes) -> Reply:
        if p == ["images"] and method == "POST":
            return self._create_image(json.loads(body or b"{}"))
        if p == ["images"]:
            found = [i for i in self.images.values() if i["lifecycleState"] != "DELETED"
                     and (not q.get("displayName") or i["displayName"] == q["displayName"])]
            return Reply(200, sorted(found, key=lambda i: i["timeCreated"], reverse=True))
        if p[0] == "images" and len(p) >= 2:
            image = self.images.get(p[1])
            if image is None:
                return _error(404, "NotAuthorizedOrNotFound", "Authorization failed or requested resource not found.")
            if len(p) == 2:
                return Reply(200, image)
            if len(p) == 3 and p[2] == "shapes":
                return Reply(200, [{"imageId": p[1], "shape": s} for s in self.shapes.get(p[1], [])])
            if len(p) == 4 and p[2] == "shapes" and method == "PUT":
                if p[3] not in self.shapes.setdefault(p[1], []):
                    self.shapes[p[1]].append(p[3])
                return Reply(200, {"imageId": p[1], "shape": p[3]})
        if p[0] == "workRequests" and len(p) >= 2:
            wr = self.work_requests.get(p[1])
            if wr is None:
                return _error(404, "NotAuthorizedOrNotFound", "Authorization failed or requested resource not found.")
            if len(p) == 3 and p[2] == "errors":
                return Reply(200, wr["errors"])
            return Reply(200, self._advance(wr))
        if p == ["computeGlobalImageCapabilitySchemas"]:
            return Reply(200, [{"id": "ocid1.computeglobalimgcapschema.oc1..sandbox", "currentVersionName": GLOBAL_SCHEMA_VERSION,
                                "displayName": "OCI.ComputeGlobalImageCapabilitySchema", "timeCreated": _now()}])
        if p == ["computeImageCapabilitySchemas"] and method == "POST":
            return self._capability_schema(json.loads(body or b"{}"))
        return _error(404, "NotAuthorizedOrNotFound", "Authorization failed or requested resource not found.")

    def _create_image(self, d: dict[str, Any]) -> Reply:
        if self.custom_images_used() >= self.custom_image_limit:
            return _error(400, "LimitExceeded", "The following service limits were exceeded: custom-image-count. "
                                                "Request a service limit increase from the service limits page in the console. ")
        src = dict(d.get("imageSourceDetails") or {})
        if src.get("sourceType") == "objectStorageUri":
            found = re.search(r"/(?:p/[^/]+/)?n/([^/]+)/b/([^/]+)/o/(.+)$", urlsplit(str(src.get("sourceUri") or "")).path)
            if found is None:
                return _error(400, "InvalidParameter", "sourceUri is not an Object Storage object URL")
            src.update(namespaceName=found[1], bucketName=found[2], objectName=unquote(found[3]))
        elif src.get("sourceType") != "objectStorageTuple":
            return _error(400, "InvalidParameter", "imageSourceDetails.sourceType must be objectStorageTuple or objectStorageUri")
        if src.get("sourceImageType") not in (None, "QCOW2", "VMDK"):
            return _error(400, "InvalidParameter", "sourceImageType must be QCOW2 or VMDK")
        image_id = self._id("image")
        firmware = "BIOS" if src.get("sourceImageType") == "VMDK" else "UEFI_64"  # research §2.4: VMDK imports default to BIOS
        image = {"id": image_id, "compartmentId": d.get("compartmentId"), "displayName": d.get("displayName") or image_id,
                 "lifecycleState": "IMPORTING", "launchMode": d.get("launchMode", "PARAVIRTUALIZED"),
                 "operatingSystem": src.get("operatingSystem"), "operatingSystemVersion": src.get("operatingSystemVersion"),
                 "createImageAllowed": True, "timeCreated": _now(), "freeformTags": d.get("freeformTags") or {},
                 "launchOptions": {"firmware": firmware, "networkType": "PARAVIRTUALIZED", "bootVolumeType": "PARAVIRTUALIZED",
                                   "remoteDataVolumeType": "PARAVIRTUALIZED", "isPvEncryptionInTransitEnabled": True,
                                   "isConsistentVolumeNamingEnabled": True},
                 "sourceObject": [src.get("namespaceName"), src.get("bucketName"), src.get("objectName")]}
        self.images[image_id] = image
        wr_id = self._id("coreservicesworkrequest")
        self.work_requests[wr_id] = {"id": wr_id, "operationType": "ImportImage", "status": "ACCEPTED", "compartmentId": d.get("compartmentId"),
                                     "resources": [{"entityType": "image", "actionType": "CREATED", "identifier": image_id}],
                                     "percentComplete": 0.0, "timeAccepted": _now(), "errors": [], "image": image_id}
        return Reply(200, image, {"opc-work-request-id": wr_id, "etag": image_id[-8:]})

    def _advance(self, wr: dict[str, Any]) -> dict[str, Any]:
        image = self.images[wr["image"]]
        if wr["status"] == "ACCEPTED":
            wr["status"] = "IN_PROGRESS"
        elif wr["status"] == "IN_PROGRESS":
            ns, bucket, name = image["sourceObject"]
            if ns != NAMESPACE or (bucket, name) not in self.objects:
                wr["status"] = "FAILED"
                wr["errors"] = [{"code": "ObjectNotFound", "message": f"The object '{name}' was not found in the bucket '{bucket}'", "timestamp": _now()}]
                image["lifecycleState"] = "DELETED"
            else:
                wr["status"] = "SUCCEEDED"
                wr["percentComplete"] = 100.0
                image["lifecycleState"] = "AVAILABLE"
                image["sizeInMBs"] = max(1, len(self.objects[(bucket, name)].data) // (1024 * 1024))
        return {k: v for k, v in wr.items() if k not in ("errors", "image")}

    def _capability_schema(self, d: dict[str, Any]) -> Reply:
        image = self.images.get(d.get("imageId", ""))
        if image is None:
            return _error(404, "NotAuthorizedOrNotFound", "Authorization failed or requested resource not found.")
        if d.get("computeGlobalImageCapabilitySchemaVersionName") != GLOBAL_SCHEMA_VERSION:
            return _error(400, "InvalidParameter", "computeGlobalImageCapabilitySchemaVersionName is not a version of the global schema")
        firmware = (d.get("schemaData") or {}).get("Compute.Firmware") or {}
        values = firmware.get("values") or []
        if firmware and (not values or any(v not in FIRMWARES for v in values)):
            return _error(400, "InvalidParameter", f"Compute.Firmware values must be among {', '.join(FIRMWARES)}")
        if firmware:
            image["launchOptions"]["firmware"] = firmware.get("defaultValue") or values[0]
        schema = {"id": self._id("computeimgcapschema"), "compartmentId": d.get("compartmentId"), "imageId": image["id"],
                  "computeGlobalImageCapabilitySchemaVersionName": GLOBAL_SCHEMA_VERSION, "schemaData": d.get("schemaData"),
                  "displayName": d.get("displayName"), "timeCreated": _now()}
        return Reply(200, schema)
