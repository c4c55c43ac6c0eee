"""Every client library's exceptions as tierzero errors with a remedy, at the adapter boundary.

`CallFailed` is a call to an outside service that failed: `status` is the HTTP status (or gRPC
code name) when there is one, `transient` says whether trying again may help (the retry
classifiers read it). `AuthenticationFailed` is never transient: a refused credential stays
refused, so waiting for a deadline only delays the message. One function per library:
proxmoxer, requests, asyncssh, kubernetes, oci and subprocess (tofu, sops, git); gRPC (Talos)
is mapped in `tierzero.adapters.talos.classify_rpc_error`.
"""

from __future__ import annotations

import subprocess
from typing import Any

from tierzero.errors import OperationError

_5XX_TRANSIENT = (500, 502, 503, 504)
_RETRY_STATUS = (408, 425, 429, *_5XX_TRANSIENT)


class CallFailed(OperationError):
    """A call to an outside service failed."""

    def __init__(self, message: str, *, hint: str | None = None, status: int | str | None = None, transient: bool = False) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.transient = transient


class Unreachable(CallFailed):
    """The service did not answer (connection refused or reset, timeout, DNS): worth retrying."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint or "check the address, the port and that the service is up; then run again", transient=True)


class AuthenticationFailed(CallFailed):
    """The service refused the credentials: stop at once, retrying cannot help."""

    def __init__(self, message: str, *, hint: str, status: int | str | None = None) -> None:
        super().__init__(message, hint=hint, status=status, transient=False)


def _http(what: str, status: int, detail: str, auth_hint: str, hint: str) -> CallFailed:
    text = f"{what}: HTTP {status}" + (f": {detail}" if detail else "")
    if status == 401:
        return AuthenticationFailed(text, hint=auth_hint, status=status)
    if status == 403:
        return CallFailed(text, hint="the credentials are valid but lack a permission: " + auth_hint, status=status)
    return CallFailed(text, hint=hint, status=status, transient=status in _RETRY_STATUS)


# ---------------------------------------------------------------------------- libraries

def from_requests(exc: BaseException, what: str) -> CallFailed:
    """requests (and so proxmoxer's transport): TLS, connection, timeout, HTTP errors."""
    import requests

    if isinstance(exc, requests.exceptions.SSLError):  # a ConnectionError, but retrying will not fix a certificate
        return CallFailed(f"{what}: TLS failed: {exc}", hint="the server's certificate is not trusted: give its CA, or check the address")
    if isinstance(exc, (requests.ConnectionError, requests.Timeout)):
        return Unreachable(f"{what}: {type(exc).__name__}: {exc}")
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return _http(what, exc.response.status_code, exc.response.reason or "", "check the credentials", "see the service's logs, then run again")
    return CallFailed(f"{what}: {type(exc).__name__}: {exc}", hint="run again with --debug for details")


PROXMOX_AUTH_HINT = "the API token was refused: check token_id/token_secret, or let tierzero recreate its token (hypervisors phase)"


def from_proxmoxer(exc: BaseException, what: str) -> CallFailed:
    """proxmoxer's ResourceException (an API answer other than 2xx) and AuthenticationError."""
    from proxmoxer import AuthenticationError
    from proxmoxer.core import ResourceException

    if isinstance(exc, AuthenticationError):
        return AuthenticationFailed(f"{what}: {exc}", hint=PROXMOX_AUTH_HINT)
    if isinstance(exc, ResourceException):
        detail = str(getattr(exc, "content", "") or getattr(exc, "status_message", "") or exc)
        return _http(what, int(exc.status_code), detail, PROXMOX_AUTH_HINT, "check the Proxmox task log and the node's storage and network, then run again")
    return from_requests(exc, what)


def from_asyncssh(exc: BaseException, what: str) -> CallFailed:
    """asyncssh: a refused key, a changed host key, a dropped connection."""
    import asyncssh

    if isinstance(exc, asyncssh.PermissionDenied):
        return AuthenticationFailed(f"{what}: the host refused the key ({exc.reason})",
                                    hint="authorise the workspace key (.tierzero/id_ed25519.pub) for this user in ~/.ssh/authorized_keys on the host")
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        return CallFailed(f"{what}: the host key does not match the recorded one ({exc.reason})",
                          hint="if the host was reinstalled, delete its line from .tierzero/known_hosts; otherwise treat it as an attack")
    if isinstance(exc, (asyncssh.ConnectionLost, asyncssh.ChannelOpenError, OSError, TimeoutError)):
        return Unreachable(f"{what}: {type(exc).__name__}: {exc}", hint="check the host is up and SSH answers on its port")
    if isinstance(exc, asyncssh.DisconnectError):
        return CallFailed(f"{what}: disconnected: {exc.reason}", hint="see the host's sshd log (journalctl -u ssh)")
    return CallFailed(f"{what}: {type(exc).__name__}: {exc}", hint="run again with --debug for details")


KUBE_AUTH_HINT = "the kubeconfig's credentials were refused: re-run the platform phase to write a fresh kubeconfig"


def from_kubernetes(exc: BaseException, what: str) -> CallFailed:
    """An error answer of the API server (anything with an int `status` and a `reason`: the
    Kubernetes adapter's, or an HTTP status error of httpx, which lightkube uses) and httpx's
    transport errors (connect, TLS, timeouts)."""
    import httpx2

    if isinstance(exc, httpx2.HTTPStatusError):
        return _http(what, exc.response.status_code, exc.response.reason_phrase, KUBE_AUTH_HINT,
                     "check the object and the API server (`kubectl get --raw /readyz`), then run again")
    status = getattr(exc, "status", None)
    if isinstance(status, int):
        return _http(what, status, str(getattr(exc, "reason", "") or ""), KUBE_AUTH_HINT,
                     "check the object and the API server (`kubectl get --raw /readyz`), then run again")
    if isinstance(exc, httpx2.ConnectError) and "CERTIFICATE" in str(exc).upper():  # retrying will not fix a certificate
        return CallFailed(f"{what}: TLS failed: {exc}", hint="the API server's certificate is not trusted: check the kubeconfig's CA")
    if isinstance(exc, (httpx2.TransportError, OSError)):
        return Unreachable(f"{what}: {type(exc).__name__}: {exc}", hint="check the cluster's API endpoint answers on 6443")
    return CallFailed(f"{what}: {type(exc).__name__}: {exc}", hint="run again with --debug for details")


OCI_AUTH_HINT = "OCI refused the API key: check user, fingerprint, key_file and tenancy in the ~/.oci/config profile"


def from_oci(exc: BaseException, what: str) -> CallFailed:
    """The OCI SDK's ServiceError (an API answer: status and code) and its transport errors."""
    import oci

    if isinstance(exc, oci.exceptions.ServiceError):
        status, code = int(exc.status or 0), str(exc.code or "")
        text = f"{what}: {status} {code}: {exc.message}"
        if status == 401 or code == "NotAuthenticated":
            return AuthenticationFailed(text, hint=OCI_AUTH_HINT, status=status)
        if status == 404 and code == "NotAuthorizedOrNotFound":
            return CallFailed(text, hint="the compartment or resource does not exist, or the user's policies do not allow reading it", status=status)
        return CallFailed(text, hint="see OCI's API error codes for this one, then run again", status=status,
                          transient=status in _RETRY_STATUS or code == "TooManyRequests")
    if isinstance(exc, (oci.exceptions.RequestException, oci.exceptions.ConnectTimeout, OSError)):
        return Unreachable(f"{what}: {type(exc).__name__}: {exc}", hint="check the network reaches the region's endpoints")
    return CallFailed(f"{what}: {type(exc).__name__}: {exc}", hint="run again with --debug for details")


def from_subprocess(exc: BaseException, program: str, what: str) -> OperationError:
    """A program tierzero runs (tofu, sops, git): missing, timed out, or exited non-zero."""
    if isinstance(exc, FileNotFoundError):
        return OperationError(f"{what}: `{program}` was not found", hint=f"install {program} and put it on PATH")
    if isinstance(exc, subprocess.TimeoutExpired):
        return OperationError(f"{what}: `{program}` did not finish within {exc.timeout:g}s", hint="run it by hand to see where it hangs")
    if isinstance(exc, subprocess.CalledProcessError):
        tail = _tail(exc.stderr) or _tail(exc.output)
        return OperationError(f"{what}: `{program}` exited {exc.returncode}" + (f": {tail}" if tail else ""),
                              hint=f"run `{program}` by hand with the same arguments to see the whole error")
    if isinstance(exc, OSError):
        return OperationError(f"{what}: cannot run `{program}`: {exc.strerror or exc}", hint=f"check the {program} binary on PATH")
    return OperationError(f"{what}: {type(exc).__name__}: {exc}")


def _tail(output: Any) -> str:
    if isinstance(output, bytes):
        output = output.decode(errors="replace")
    lines = [line for line in str(output or "").strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""
