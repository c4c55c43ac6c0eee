"""What an OCI error during a create means for the A1 capacity hunt: whose fault it is, and what to do.

The OCI provider writes service errors as "<status>-<code>, <message>" (oracle/terraform-provider-oci
`internal/tfresource/errors.go`: "Error: 500-InternalError, Out of host capacity."), older releases as
"Service error:<code>. <message>. http status code: <status>". The codes are the API's (OCI docs, "API Errors").

- `ad`: this availability domain has no room now; try the next one, come back later.
- `ad-permanent`: this availability domain does not offer what was asked (the shape is not there for the
  tenancy, or the AD name is wrong); drop it for the rest of the run.
- `retry`: throttled; wait and retry where it was.
- `request`: the request itself is wrong (credentials, policies, limits, quotas, the image, a parameter);
  no AD will accept it, so the hunt stops at once with the cause and the fix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Scope = Literal["ad", "ad-permanent", "retry", "request"]


@dataclass(frozen=True)
class OciError:
    scope: Scope
    cause: str
    fix: str


# First match wins: the specific messages come before the codes they share (a missing shape is a 404 too).
_RULES: tuple[tuple[re.Pattern[str], OciError], ...] = (
    # hitrov/oci-arm-host-capacity issues 96 and 142; OCI docs "Troubleshooting instance launch": no capacity.
    (re.compile(r"out of host capacity|outofhostcapacity|out of capacity", re.I),
     OciError("ad", "no A1 host capacity in this availability domain right now", "wait, or try another availability domain")),
    # "404-NotAuthorizedOrNotFound, shape VM.Standard.A1.Flex not found": the AD does not offer the shape
    # (oracle-quickstart/oci-cloudnative issue 41, hitrov/oci-arm-host-capacity issue 96).
    (re.compile(r"shape \S+ (?:was )?not found|shape \S+ is not (?:available|supported) in (?:this|the) availability domain", re.I),
     OciError("ad-permanent", "this availability domain does not offer the shape to this tenancy",
              "the hunt goes on in the other availability domains; list only ADs that offer it in cloud.oci.availability_domains")),
    (re.compile(r"invalid availability ?domain|availability ?domain \S* ?(?:was )?not found|availabilityDomain .*is not valid", re.I),
     OciError("ad-permanent", "this availability domain name is not valid in the region",
              "use the names `oci iam availability-domain list` prints (e.g. Uocm:EU-FRANKFURT-1-AD-1)")),
    # 429 TooManyRequests: the API throttles the caller (OCI docs, "API Errors").
    (re.compile(r"\b429\b|TooManyRequests", re.I),
     OciError("retry", "OCI throttled the requests (429 TooManyRequests)", "wait and retry in the same availability domain")),
    # 401 NotAuthenticated (OCI docs, "API Errors").
    (re.compile(r"NotAuthenticated|\b401-", re.I),
     OciError("request", "OCI did not accept the credentials (401 NotAuthenticated)",
              "check the ~/.oci/config profile: user and tenancy OCIDs, key_file and fingerprint of the uploaded API key")),
    # 400 LimitExceeded / QuotaExceeded: a service limit or a compartment quota (OCI docs, "Service Limits", "Compartment Quotas").
    (re.compile(r"LimitExceeded|service limits? (?:were|was|is) exceeded", re.I),
     OciError("request", "a service limit of the tenancy is reached (LimitExceeded)",
              "Always Free caps A1 at the free allowance: shrink or remove instances in the spec, or ask Oracle to raise the limit")),
    (re.compile(r"QuotaExceeded|quota (?:exceeded|policy)", re.I),
     OciError("request", "a compartment quota forbids it (QuotaExceeded)", "raise or remove the compartment quota, or build in another compartment")),
    # A bad image: missing, or not for this shape's architecture (an x86_64 image on A1).
    (re.compile(r"image \S+ (?:was )?not found|not valid for (?:the )?image|image .*(?:not compatible|incompatible|not supported)", re.I),
     OciError("request", "the image does not exist here or does not fit the shape",
              "use an aarch64 platform image for A1 (image_operating_system / a1_image_ocid) from this region")),
    (re.compile(r"InvalidParameter|MissingParameter|\b400-", re.I),
     OciError("request", "OCI rejected a parameter of the request (400 InvalidParameter)", "correct the parameter the message names in the spec")),
    # Any other 404: a wrong compartment OCID or a missing IAM policy (OCI docs, "API Errors": NotAuthorizedOrNotFound).
    (re.compile(r"NotAuthorizedOrNotFound|\b404-", re.I),
     OciError("request", "authorization failed or the resource does not exist (404 NotAuthorizedOrNotFound)",
              "check the compartment OCID and that an IAM policy lets the user manage instances in it")),
)


def classify(text: str) -> OciError | None:
    """The class of an OCI error message; None when it is not one this module knows."""
    for pattern, error in _RULES:
        if pattern.search(text):
            return error
    return None
