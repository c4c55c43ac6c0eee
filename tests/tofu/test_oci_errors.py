"""How OCI errors steer the capacity hunt: several messages per class, in the forms the OCI provider writes
("<status>-<code>, <message>", oracle/terraform-provider-oci internal/tfresource/errors.go) and the older
"Service error:<code>. <message>. http status code: <status>"; codes from the OCI docs, "API Errors"."""

from __future__ import annotations

import pytest

from tierzero.adapters.oci_errors import classify

CASES = {
    "ad": [  # hitrov/oci-arm-host-capacity issues 96 and 142
        "500-InternalError, Out of host capacity.",
        "Error: 500-InternalError\nOut of host capacity. Service: Core Instance",
        "Service error:InternalError. Out of host capacity.. http status code: 500. Opc request id: abc",
        '{"code": "InternalError", "message": "Out of host capacity."}',
    ],
    "ad-permanent": [  # oracle-quickstart/oci-cloudnative issue 41; hitrov/oci-arm-host-capacity issue 96
        "404-NotAuthorizedOrNotFound, shape VM.Standard.A1.Flex not found",
        "Service error:NotAuthorizedOrNotFound. shape VM.Standard.E2.1.Micro not found. http status code: 404.",
        '{"code": "NotAuthorizedOrNotFound", "message": "shape VM.Standard.A1.Flex not found"}',
        "400-InvalidParameter, Invalid availabilityDomain: Uocm:EU-FRANKFURT-1-AD-9",
    ],
    "retry": [
        "429-TooManyRequests, Too many requests for the user",
        "Service error:TooManyRequests. Too many requests. http status code: 429",
    ],
    "request": [
        "401-NotAuthenticated, The required information to complete authentication was not provided or was incorrect.",
        "400-LimitExceeded, The following service limits were exceeded: standard-a1-core-count",
        "400-LimitExceeded, The following service limits were exceeded: standard-a1-memory-count, standard-a1-core-count",
        "400-QuotaExceeded, Quota exceeded for the compartment",
        "404-NotAuthorizedOrNotFound, image ocid1.image.oc1.eu-frankfurt-1.aaaa not found",
        "400-InvalidParameter, Shape VM.Standard.A1.Flex is not valid for image ocid1.image.oc1..x",
        "400-InvalidParameter, Invalid ShapeConfig: null (Cannot launch flexible instance without ShapeConfig)",
        "Service error:NotAuthorizedOrNotFound. Authorization failed or requested resource not found.. http status code: 404.",
    ],
}


@pytest.mark.parametrize(("scope", "text"), [(s, t) for s, texts in CASES.items() for t in texts])
def test_each_message_gets_its_class(scope, text):
    error = classify(text)
    assert error is not None and error.scope == scope, text
    assert error.cause and error.fix


@pytest.mark.parametrize("text", ["Error: timeout while waiting for state to become 'RUNNING'", "exit status 1", ""])
def test_messages_that_are_not_oci_errors_are_not_classed(text):
    assert classify(text) is None


def test_a_missing_shape_is_the_ads_while_a_missing_image_is_the_requests():
    """Both are 404-NotAuthorizedOrNotFound; only the shape depends on the AD."""
    assert classify("404-NotAuthorizedOrNotFound, shape VM.Standard.A1.Flex not found").scope == "ad-permanent"
    assert classify("404-NotAuthorizedOrNotFound, image ocid1.image.oc1..x not found").scope == "request"
