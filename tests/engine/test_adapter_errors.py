"""Every client library's exceptions become tierzero errors with a remedy at the adapter boundary,
and a refused credential stops at once instead of being retried until a deadline."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import asyncssh
import grpc
import oci
import pytest
import requests
import httpx2
from proxmoxer import AuthenticationError
from proxmoxer.core import ResourceException

from tierzero.adapters import errors
from tierzero.adapters.connections import Connections
from tierzero.adapters.errors import AuthenticationFailed, CallFailed, Unreachable
from tierzero.adapters.proxmox import connect
from tierzero.adapters.retry import Policy, default_classifier, retry_call
from tierzero.adapters.talos import TalosUnavailable, classify_rpc_error
from tierzero.errors import OperationError, TierzeroError
from tierzero.sandbox.fakepve import start_fakepve


@dataclass
class RpcError(grpc.RpcError):
    status: grpc.StatusCode
    text: str = "refused"

    def code(self) -> grpc.StatusCode:
        return self.status

    def details(self) -> str:
        return self.text


def _response(status: int) -> requests.Response:
    resp = requests.Response()
    resp.status_code, resp.reason = status, "Unauthorized" if status == 401 else "Service Unavailable"
    return resp


Mapper = Callable[[BaseException], TierzeroError]
def _api_status(status: int, reason: str) -> Exception:
    from tierzero.adapters.kubernetes import _ApiStatus

    return _ApiStatus(status, reason)


def _http_status_error(status: int) -> httpx2.HTTPStatusError:
    request = httpx2.Request("GET", "https://127.0.0.1:6443/api/v1/nodes")
    return httpx2.HTTPStatusError("error", request=request, response=httpx2.Response(status, request=request))


CASES: list[tuple[str, BaseException, Mapper, type[TierzeroError], bool]] = [
    # (library, its exception, the mapping, the tierzero error, retried?)
    ("proxmoxer", ResourceException(401, "Unauthorized", "invalid token value"), lambda e: errors.from_proxmoxer(e, "GET /nodes"), AuthenticationFailed, False),
    ("proxmoxer", ResourceException(500, "Internal Server Error", "got timeout"), lambda e: errors.from_proxmoxer(e, "GET /nodes"), CallFailed, True),
    ("proxmoxer", AuthenticationError("Couldn't authenticate user: root@pam"), lambda e: errors.from_proxmoxer(e, "login"), AuthenticationFailed, False),
    ("requests", requests.exceptions.SSLError("certificate verify failed"), lambda e: errors.from_requests(e, "GET"), CallFailed, False),
    ("requests", requests.ConnectionError("Connection refused"), lambda e: errors.from_requests(e, "GET"), Unreachable, True),
    ("requests", requests.HTTPError(response=_response(401)), lambda e: errors.from_requests(e, "GET"), AuthenticationFailed, False),
    ("requests", requests.HTTPError(response=_response(503)), lambda e: errors.from_requests(e, "GET"), CallFailed, True),
    ("asyncssh", asyncssh.PermissionDenied("publickey"), lambda e: errors.from_asyncssh(e, "ssh pve1"), AuthenticationFailed, False),
    ("asyncssh", asyncssh.HostKeyNotVerifiable("mismatch"), lambda e: errors.from_asyncssh(e, "ssh pve1"), CallFailed, False),
    ("asyncssh", asyncssh.ConnectionLost("reset"), lambda e: errors.from_asyncssh(e, "ssh pve1"), Unreachable, True),
    ("grpc", RpcError(grpc.StatusCode.UNAUTHENTICATED), lambda e: classify_rpc_error(e, "Version on 10.0.0.1"), AuthenticationFailed, False),  # type: ignore[arg-type]
    ("grpc", RpcError(grpc.StatusCode.UNAVAILABLE, "connection refused"), lambda e: classify_rpc_error(e, "Version on 10.0.0.1"), TalosUnavailable, False),  # type: ignore[arg-type]
    ("kubernetes", _api_status(401, "Unauthorized"), lambda e: errors.from_kubernetes(e, "GET /api/v1/nodes"), AuthenticationFailed, False),
    ("kubernetes", _api_status(503, "Service Unavailable"), lambda e: errors.from_kubernetes(e, "GET /api/v1/nodes"), CallFailed, True),
    ("kubernetes", _http_status_error(503), lambda e: errors.from_kubernetes(e, "GET /api/v1/nodes"), CallFailed, True),
    ("kubernetes", httpx2.ConnectError("[Errno 111] Connection refused"), lambda e: errors.from_kubernetes(e, "GET /version"), Unreachable, True),
    ("kubernetes", httpx2.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"), lambda e: errors.from_kubernetes(e, "GET /version"),
     CallFailed, False),
    ("kubernetes", httpx2.ReadTimeout("timed out"), lambda e: errors.from_kubernetes(e, "GET /version"), Unreachable, True),
    ("oci", oci.exceptions.ServiceError(401, "NotAuthenticated", {}, "The required information to complete authentication was not provided."),
     lambda e: errors.from_oci(e, "list instances"), AuthenticationFailed, False),
    ("oci", oci.exceptions.ServiceError(429, "TooManyRequests", {}, "Too many requests for the user"), lambda e: errors.from_oci(e, "list instances"), CallFailed, True),
    ("oci", oci.exceptions.ServiceError(404, "NotAuthorizedOrNotFound", {}, "Authorization failed or requested resource not found"),
     lambda e: errors.from_oci(e, "list instances"), CallFailed, False),
    ("subprocess", subprocess.CalledProcessError(1, ["tofu", "apply"], stderr=b"Error: Out of host capacity\n"),
     lambda e: errors.from_subprocess(e, "tofu", "tofu apply"), OperationError, False),
    ("subprocess", subprocess.TimeoutExpired(["sops"], 60), lambda e: errors.from_subprocess(e, "sops", "sops encrypt"), OperationError, False),
    ("subprocess", FileNotFoundError(2, "No such file or directory", "git"), lambda e: errors.from_subprocess(e, "git", "git push"), OperationError, False),
]


@pytest.mark.parametrize("library, exc, mapping, expected, retried", CASES, ids=[f"{c[0]}-{type(c[1]).__name__}-{i}" for i, c in enumerate(CASES)])
def test_each_client_librarys_exceptions_become_tierzero_errors(library: str, exc: BaseException, mapping: Mapper,
                                                                   expected: type[TierzeroError], retried: bool) -> None:
    error = mapping(exc)
    assert type(error) is expected or (expected is OperationError and isinstance(error, OperationError))
    assert error.hint and error.message  # a remedy, and what failed
    assert default_classifier(error) is retried


def test_every_library_of_the_adapters_has_cases() -> None:
    assert {c[0] for c in CASES} == {"proxmoxer", "requests", "asyncssh", "grpc", "kubernetes", "oci", "subprocess"}


def test_a_refused_credential_is_tried_once_however_long_the_deadline() -> None:
    attempts: list[int] = []

    def refused() -> None:
        attempts.append(1)
        raise errors.from_kubernetes(_api_status(401, "Unauthorized"), "GET /version")

    with pytest.raises(AuthenticationFailed):
        retry_call(refused, policy=Policy(deadline=600.0), sleep=lambda s: None)
    assert len(attempts) == 1


async def test_proxmox_refuses_a_wrong_token_at_once(tmp_path: Path) -> None:
    server = start_fakepve(["pve1"])
    try:
        conns = server.connections(Connections(target="sandbox"))
        client = connect(conns, "pve1", "root@pam!tierzero", "not-the-secret")
        with pytest.raises(AuthenticationFailed) as refused:
            await client.call("GET", "/nodes")
        assert "401" in refused.value.message and "token" in (refused.value.hint or "")
        assert client.policy.deadline >= 300  # not cut short: the refusal itself stops it
    finally:
        server.stop()
