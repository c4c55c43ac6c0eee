"""Infisical's REST API, the few calls tierzero needs to bootstrap an instance and a machine identity.

Field names follow Infisical's API reference: admin bootstrap (POST /api/v1/admin/bootstrap), the
non-SRP password login (POST /api/v3/auth/login, then /api/v3/auth/select-organization for an
organization-scoped token), organizations, identities, Universal Auth and its client secrets.
Errors never carry request bodies, so no password or secret reaches a message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests

from tierzero.adapters import calls
from tierzero.adapters.connections import Endpoint
from tierzero.errors import OperationError

ALREADY_SET_UP = "already been set up"
TOO_OLD = ("this Infisical release predates automated bootstrapping or the password login API: "
           "set services[].infisical_version to a newer release")
USER_AGENT = "tierzero"


class InfisicalError(OperationError):
    """An answer other than success; `status` is the HTTP status (0 when unreachable)."""

    def __init__(self, what: str, status: int, message: str, error: str = "", hint: str | None = None) -> None:
        detail = f"{error}: {message}" if error and message else (message or error or "no details")
        super().__init__(f"Infisical {what} failed ({status or 'unreachable'}): {detail}", hint=hint)
        self.status, self.api_message, self.api_error = status, message, error


class InfisicalUnreachable(InfisicalError):
    pass


class AlreadySetUp(InfisicalError):
    """The instance was bootstrapped before: log in with the stored admin password instead."""


class InvalidCredentials(InfisicalError):
    pass


@dataclass(frozen=True)
class Bootstrap:
    user_id: str
    organization: dict[str, Any]  # {id, name, slug}
    token: str  # the instance admin identity's token (Token Auth)


class InfisicalClient:
    def __init__(self, endpoint: Endpoint, *, timeout: float = 15.0) -> None:
        self.base = endpoint.url
        self.verify = endpoint.verify
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT  # the login route refuses requests without one

    def close(self) -> None:
        self.session.close()

    # ------------------------------------------------------------------ transport

    def _call(self, what: str, method: str, path: str, *, token: str | None = None, body: dict[str, Any] | None = None,
              ok: tuple[int, ...] = (200,)) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        calls.sent("infisical", self.base, f"{method} {path}")
        try:
            resp = self.session.request(method, self.base + path, json=body, headers=headers, timeout=self.timeout, verify=self.verify)
        except requests.RequestException as exc:
            raise InfisicalUnreachable(what, 0, f"{type(exc).__name__} talking to {self.base}") from None
        try:
            data = resp.json()
        except ValueError:
            data = {}
        if resp.status_code in ok:
            return resp.status_code, data
        message = data.get("message", "") if isinstance(data, dict) else ""
        if not isinstance(message, str):
            message = "invalid request: " + "; ".join(str(i.get("message", i)) if isinstance(i, dict) else str(i) for i in message)
        error = data.get("error", "") if isinstance(data, dict) else ""
        raise InfisicalError(what, resp.status_code, message or resp.reason or "", str(error))

    # ------------------------------------------------------------------ instance

    def ready(self) -> bool:
        """True once GET /api/status answers 200."""
        calls.sent("infisical", self.base, "GET /api/status")
        try:
            resp = self.session.get(self.base + "/api/status", timeout=self.timeout, verify=self.verify)
        except requests.RequestException:
            return False
        return resp.status_code == 200

    def bootstrap(self, email: str, password: str, organization: str) -> Bootstrap:
        try:
            _, data = self._call("admin bootstrap", "POST", "/api/v1/admin/bootstrap",
                                 body={"email": email, "password": password, "organization": organization})
        except InfisicalUnreachable:
            raise
        except InfisicalError as exc:
            if exc.status == 400 and ALREADY_SET_UP in exc.api_message.lower():
                raise AlreadySetUp("admin bootstrap", exc.status, exc.api_message, exc.api_error) from None
            if exc.status == 404:
                raise InfisicalError("admin bootstrap", 404, exc.api_message, exc.api_error, hint=TOO_OLD) from None
            raise
        return Bootstrap(user_id=data["user"]["id"], organization=data["organization"], token=data["identity"]["credentials"]["token"])

    def login(self, email: str, password: str) -> str:
        """A user access token (not yet scoped to an organization)."""
        try:
            _, data = self._call("admin login", "POST", "/api/v3/auth/login", body={"email": email, "password": password})
        except InfisicalError as exc:
            if exc.status in (400, 401, 403) and not isinstance(exc, InfisicalUnreachable):
                raise InvalidCredentials(
                    "admin login", exc.status, exc.api_message, exc.api_error,
                    hint=f"the instance is already set up and the stored admin password does not work for {email}; "
                    "restore the workspace secrets from backup, or reset the instance's database",
                ) from None
            if exc.status == 404:
                raise InfisicalError("admin login", 404, exc.api_message, exc.api_error, hint=TOO_OLD) from None
            raise
        return str(data["accessToken"])

    def select_organization(self, token: str, organization_id: str) -> str:
        _, data = self._call("select organization", "POST", "/api/v3/auth/select-organization", token=token,
                             body={"organizationId": organization_id})
        return str(data["token"])

    def organizations(self, token: str) -> list[dict[str, Any]]:
        _, data = self._call("list organizations", "GET", "/api/v1/organization", token=token)
        return list(data.get("organizations", []))

    # ------------------------------------------------------------------ identities

    def identities(self, token: str, organization_id: str) -> list[dict[str, Any]]:
        """The organization's machine identities as {id, name, authMethods}."""
        _, data = self._call("list identities", "GET", f"/api/v2/organizations/{organization_id}/identity-memberships", token=token)
        return [m["identity"] for m in data.get("identityMemberships", [])]

    def create_identity(self, token: str, name: str, organization_id: str, role: str) -> dict[str, Any]:
        _, data = self._call("create identity", "POST", "/api/v1/identities", token=token,
                             body={"name": name, "organizationId": organization_id, "role": role})
        return dict(data["identity"])

    def universal_auth(self, token: str, identity_id: str) -> dict[str, Any] | None:
        """The identity's Universal Auth config, or None when none is attached."""
        try:
            _, data = self._call("read universal auth", "GET", f"/api/v1/auth/universal-auth/identities/{identity_id}", token=token)
        except InfisicalError as exc:
            if exc.status in (400, 404):
                return None
            raise
        return dict(data["identityUniversalAuth"])

    def attach_universal_auth(self, token: str, identity_id: str, *, trusted_cidrs: list[str], access_token_ttl: int,
                              access_token_max_ttl: int, update: bool = False) -> dict[str, Any]:
        """Attach (POST) or, with update=True, change (PATCH) the identity's Universal Auth settings."""
        ips = [{"ipAddress": cidr} for cidr in trusted_cidrs]
        method, what = ("PATCH", "update universal auth") if update else ("POST", "attach universal auth")
        _, data = self._call(what, method, f"/api/v1/auth/universal-auth/identities/{identity_id}", token=token,
                             body={"clientSecretTrustedIps": ips, "accessTokenTrustedIps": ips,
                                   "accessTokenTTL": access_token_ttl, "accessTokenMaxTTL": access_token_max_ttl,
                                   "accessTokenNumUsesLimit": 0})
        return dict(data["identityUniversalAuth"])

    @staticmethod
    def trusted_networks(entries: list[dict[str, Any]]) -> set[str]:
        """Infisical's {ipAddress, prefix} entries as normalised CIDR strings."""
        import ipaddress

        out = set()
        for e in entries or []:
            addr = f"{e['ipAddress']}/{e['prefix']}" if e.get("prefix") is not None else str(e["ipAddress"])
            out.add(str(ipaddress.ip_network(addr, strict=False)))
        return out

    def create_client_secret(self, token: str, identity_id: str, description: str) -> tuple[str, dict[str, Any]]:
        _, data = self._call("create client secret", "POST", f"/api/v1/auth/universal-auth/identities/{identity_id}/client-secrets",
                             token=token, body={"description": description, "numUsesLimit": 0, "ttl": 0})
        return str(data["clientSecret"]), dict(data["clientSecretData"])

    def universal_auth_login(self, client_id: str, client_secret: str) -> dict[str, Any]:
        """{accessToken, expiresIn, accessTokenMaxTTL, tokenType}; InvalidCredentials when refused."""
        try:
            _, data = self._call("universal auth login", "POST", "/api/v1/auth/universal-auth/login",
                                 body={"clientId": client_id, "clientSecret": client_secret})
        except InfisicalError as exc:
            if exc.status == 401:
                raise InvalidCredentials("universal auth login", exc.status, exc.api_message, exc.api_error) from None
            raise
        return dict(data)
