"""A stand-in Infisical API for sandbox runs and tests: stdlib HTTP server in a daemon thread.

It serves the endpoints tierzero uses with Infisical's request and response field names and its
error shape ({reqId, statusCode, message, error}), and keeps state (admin user, organizations,
identities, Universal Auth configs, client secrets, tokens) in memory, as a real server keeps
its database: password and client-secret hashes, token digests, never the values themselves.
With a sandbox world that state is restored at start and saved after every request that changed
it, before the answer is sent (`tierzero.sandbox.infisical`).

Knobs (attributes, settable while running):
  unready_polls        GET /api/status answers 503 this many times before 200
  drop_after_bootstrap the next successful bootstrap is applied, then the connection is closed
                       without an answer (an interrupted run right after the admin call)
  source_ip            the client address the trusted-IP checks see (default: the real peer)
  calls                every request as (method, path)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import re
import secrets
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, Callable

from tierzero.adapters.connections import Endpoint
from tierzero.sandbox.http_server import StandInHttpServer

# Client secrets are 256 random bits and need no stretching; the admin password might be weak.
# A modest count keeps test logins fast while still not storing anything reversible.
_ITERATIONS = 20_000


def hash_secret(value: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", value.encode(), salt, _ITERATIONS)
    return f"pbkdf2-sha256${_ITERATIONS}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_secret(value: str, stored: str) -> bool:
    try:
        scheme, rounds, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "pbkdf2-sha256":
        return False
    found = hashlib.pbkdf2_hmac("sha256", value.encode(), base64.b64decode(salt), int(rounds))
    return hmac.compare_digest(found, base64.b64decode(digest))


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class _ApiError(Exception):
    def __init__(self, status: int, message: str, error: str) -> None:
        super().__init__(message)
        self.status, self.message, self.error = status, message, error


def _bad(message: str) -> _ApiError:
    return _ApiError(400, message, "BadRequest")


def _unauthorized(message: str = "Invalid credentials") -> _ApiError:
    return _ApiError(401, message, "UnauthorizedError")


def _not_found(message: str) -> _ApiError:
    return _ApiError(404, message, "NotFound")


def _require(body: dict[str, Any], *names: str) -> None:
    missing = [n for n in names if not isinstance(body.get(n), str) or not body[n].strip()]
    if missing:
        issues = [{"code": "invalid_type", "path": [n], "message": "Required"} for n in missing]
        raise _ApiError(422, json.dumps(issues), "ValidationFailure")


def _slug(name: str) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "org"
    return f"{base}-{secrets.token_hex(2)}"


def _trusted(entries: list[dict[str, Any]], address: str) -> bool:
    ip = ipaddress.ip_address(address)
    for entry in entries:
        net = ipaddress.ip_network(f"{entry['ipAddress']}/{entry['prefix']}" if entry.get("prefix") is not None else entry["ipAddress"], strict=False)
        if ip.version == net.version and ip in net:
            return True
    return False


def _ip_entries(raw: Any) -> list[dict[str, Any]]:
    out = []
    for item in raw or [{"ipAddress": "0.0.0.0/0"}, {"ipAddress": "::/0"}]:
        net = ipaddress.ip_network(item["ipAddress"], strict=False)
        out.append({"ipAddress": str(net.network_address), "prefix": net.prefixlen, "type": f"ipv{net.version}"})
    return out


@dataclass
class InfisicalState:
    initialized: bool = False
    users: dict[str, dict[str, Any]] = field(default_factory=dict)  # by email
    orgs: dict[str, dict[str, Any]] = field(default_factory=dict)  # by id
    memberships: dict[str, set[str]] = field(default_factory=dict)  # user id -> org ids
    identities: dict[str, dict[str, Any]] = field(default_factory=dict)  # by id
    universal_auth: dict[str, dict[str, Any]] = field(default_factory=dict)  # by identity id
    client_secrets: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # by identity id, with clientSecretHash
    tokens: dict[str, dict[str, Any]] = field(default_factory=dict)  # token_digest(token) -> {kind, subject, orgId}


class InfisicalStandIn:
    """Start with `start()`; `endpoint()` gives the Endpoint to register as ("infisical", name)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.state = InfisicalState()
        self.unready_polls = 0
        self.drop_after_bootstrap = False
        self.source_ip: str | None = None
        self.calls: list[tuple[str, str]] = []
        self.on_change: Callable[[], None] | None = None  # after every request, under the lock, before the answer
        self._lock = threading.Lock()
        self._server = StandInHttpServer(_handler_for(self), host, port, name="infisical-standin")

    # ------------------------------------------------------------------ lifecycle

    @property
    def host(self) -> str:
        return self._server.host

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def endpoint(self) -> Endpoint:
        return Endpoint(host=self.host, port=self.port, scheme="http", verify=False)

    def start(self) -> "InfisicalStandIn":
        self._server.start_serving()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> "InfisicalStandIn":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ helpers

    def _token(self, kind: str, subject: str, org_id: str | None) -> str:
        token = "st." + secrets.token_urlsafe(24)
        self.state.tokens[token_digest(token)] = {"kind": kind, "subject": subject, "orgId": org_id}
        return token

    def _auth(self, headers: Any) -> dict[str, Any]:
        value = headers.get("Authorization", "")
        token = value[7:] if value.startswith("Bearer ") else ""
        found = self.state.tokens.get(token_digest(token)) if token else None
        if not found:
            raise _ApiError(401, "Token missing", "UnauthorizedError")
        return found

    def _org_of(self, auth: dict[str, Any], org_id: str) -> dict[str, Any]:
        org = self.state.orgs.get(org_id)
        if org is None:
            raise _not_found(f"Organization with ID '{org_id}' not found")
        if auth["orgId"] != org_id:
            raise _ApiError(403, "You are not allowed to access this organization", "PermissionDenied")
        return org

    def _identity(self, auth: dict[str, Any], identity_id: str) -> dict[str, Any]:
        identity = self.state.identities.get(identity_id)
        if identity is None:
            raise _not_found(f"Failed to find identity with ID {identity_id}")
        self._org_of(auth, identity["orgId"])
        return identity

    # ------------------------------------------------------------------ routes

    def status(self, body: dict[str, Any], headers: Any, peer: str) -> tuple[int, dict[str, Any]]:
        if self.unready_polls > 0:
            self.unready_polls -= 1
            return 503, {"message": "starting"}
        return 200, {"date": "2026-01-01T00:00:00.000Z", "message": "Ok", "emailConfigured": False,
                     "redisConfigured": True, "secretScanningConfigured": False, "inviteOnlySignup": False}

    def bootstrap(self, body: dict[str, Any], headers: Any, peer: str) -> tuple[int, dict[str, Any]]:
        _require(body, "email", "password", "organization")
        st = self.state
        if st.initialized:
            raise _bad("Instance has already been set up")
        email = body["email"].strip().lower()
        user = {"id": str(uuid.uuid4()), "username": email, "email": email, "firstName": "Admin",
                "lastName": "User", "superAdmin": True, "passwordHash": hash_secret(body["password"].strip())}
        org = {"id": str(uuid.uuid4()), "name": body["organization"].strip(), "slug": _slug(body["organization"])}
        st.users[email] = user
        st.orgs[org["id"]] = org
        st.memberships[user["id"]] = {org["id"]}
        admin = {"id": str(uuid.uuid4()), "name": "Instance Admin Identity", "orgId": org["id"], "role": "admin", "authMethods": ["token-auth"]}
        st.identities[admin["id"]] = admin
        st.initialized = True
        token = self._token("identity", admin["id"], org["id"])
        public_user = {k: v for k, v in user.items() if k != "passwordHash"}
        return 200, {"message": "Successfully bootstrapped instance", "user": public_user, "organization": dict(org),
                     "identity": {"id": admin["id"], "name": admin["name"], "credentials": {"token": token}}}

    def login(self, body: dict[str, Any], headers: Any, peer: str) -> tuple[int, dict[str, Any]]:
        _require(body, "email", "password")
        user = self.state.users.get(body["email"].strip().lower())
        if user is None or not verify_secret(body["password"].strip(), user["passwordHash"]):
            raise _unauthorized()
        return 200, {"accessToken": self._token("user", user["id"], None)}

    def select_org(self, body: dict[str, Any], headers: Any, peer: str) -> tuple[int, dict[str, Any]]:
        auth = self._auth(headers)
        _require(body, "organizationId")
        if auth["kind"] != "user" or body["organizationId"] not in self.state.memberships.get(auth["subject"], set()):
            raise _unauthorized("User does not have access to the organization")
        return 200, {"token": self._token("user", auth["subject"], body["organizationId"]), "isMfaEnabled": False}

    def list_orgs(self, body: dict[str, Any], headers: Any, peer: str) -> tuple[int, dict[str, Any]]:
        auth = self._auth(headers)
        ids = self.state.memberships.get(auth["subject"], set()) if auth["kind"] == "user" else {auth["orgId"]}
        return 200, {"organizations": [dict(self.state.orgs[i]) for i in sorted(ids)]}

    def create_identity(self, body: dict[str, Any], headers: Any, peer: str) -> tuple[int, dict[str, Any]]:
        auth = self._auth(headers)
        _require(body, "name", "organizationId")
        self._org_of(auth, body["organizationId"])
        role = body.get("role", "no-access")
        if role not in ("no-access", "member", "admin"):
            raise _bad(f"Failed to find role {role}")
        identity = {"id": str(uuid.uuid4()), "name": body["name"], "orgId": body["organizationId"], "role": role, "authMethods": []}
        self.state.identities[identity["id"]] = identity
        return 200, {"identity": {k: identity[k] for k in ("id", "name", "authMethods")}}

    def list_identity_memberships(self, body: dict[str, Any], headers: Any, peer: str, org_id: str) -> tuple[int, dict[str, Any]]:
        auth = self._auth(headers)
        self._org_of(auth, org_id)
        rows = [{"id": f"m-{i['id']}", "identityId": i["id"], "orgId": org_id, "role": i["role"],
                 "identity": {"id": i["id"], "name": i["name"], "authMethods": list(i["authMethods"])}}
                for i in self.state.identities.values() if i["orgId"] == org_id]
        return 200, {"identityMemberships": rows, "totalCount": len(rows)}

    def _ua_view(self, ua: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in ua.items()}

    def attach_ua(self, body: dict[str, Any], headers: Any, peer: str, identity_id: str) -> tuple[int, dict[str, Any]]:
        auth = self._auth(headers)
        identity = self._identity(auth, identity_id)
        if identity_id in self.state.universal_auth:
            raise _bad("Failed to add universal auth to already configured identity")
        ttl, max_ttl = int(body.get("accessTokenTTL", 2592000)), int(body.get("accessTokenMaxTTL", 2592000))
        if ttl > max_ttl:
            raise _bad("Access token TTL cannot be greater than max TTL")
        ua = {"id": str(uuid.uuid4()), "clientId": str(uuid.uuid4()), "identityId": identity_id,
              "accessTokenTTL": ttl, "accessTokenMaxTTL": max_ttl,
              "accessTokenNumUsesLimit": int(body.get("accessTokenNumUsesLimit", 0)),
              "clientSecretTrustedIps": _ip_entries(body.get("clientSecretTrustedIps")),
              "accessTokenTrustedIps": _ip_entries(body.get("accessTokenTrustedIps"))}
        self.state.universal_auth[identity_id] = ua
        identity["authMethods"].append("universal-auth")
        return 200, {"identityUniversalAuth": self._ua_view(ua)}

    def update_ua(self, body: dict[str, Any], headers: Any, peer: str, identity_id: str) -> tuple[int, dict[str, Any]]:
        auth = self._auth(headers)
        self._identity(auth, identity_id)
        ua = self.state.universal_auth.get(identity_id)
        if ua is None:
            raise _bad("The identity does not have universal auth")
        for key in ("accessTokenTTL", "accessTokenMaxTTL", "accessTokenNumUsesLimit"):
            if key in body:
                ua[key] = int(body[key])
        for key in ("clientSecretTrustedIps", "accessTokenTrustedIps"):
            if key in body:
                ua[key] = _ip_entries(body[key])
        if ua["accessTokenTTL"] > ua["accessTokenMaxTTL"]:
            raise _bad("Access token TTL cannot be greater than max TTL")
        return 200, {"identityUniversalAuth": self._ua_view(ua)}

    def get_ua(self, body: dict[str, Any], headers: Any, peer: str, identity_id: str) -> tuple[int, dict[str, Any]]:
        auth = self._auth(headers)
        self._identity(auth, identity_id)
        ua = self.state.universal_auth.get(identity_id)
        if ua is None:
            raise _not_found("Failed to find universal auth for identity")
        return 200, {"identityUniversalAuth": self._ua_view(ua)}

    def create_client_secret(self, body: dict[str, Any], headers: Any, peer: str, identity_id: str) -> tuple[int, dict[str, Any]]:
        auth = self._auth(headers)
        self._identity(auth, identity_id)
        ua = self.state.universal_auth.get(identity_id)
        if ua is None:
            raise _bad("The identity does not have universal auth")
        value = secrets.token_hex(32)
        data = {"id": str(uuid.uuid4()), "description": body.get("description", ""), "clientSecretPrefix": value[:4],
                "clientSecretNumUses": 0, "clientSecretNumUsesLimit": int(body.get("numUsesLimit", 0)),
                "clientSecretTTL": int(body.get("ttl", 0)), "identityUAId": ua["id"], "isClientSecretRevoked": False}
        self.state.client_secrets.setdefault(identity_id, []).append({**data, "clientSecretHash": hash_secret(value)})
        return 200, {"clientSecret": value, "clientSecretData": data}

    def list_client_secrets(self, body: dict[str, Any], headers: Any, peer: str, identity_id: str) -> tuple[int, dict[str, Any]]:
        auth = self._auth(headers)
        self._identity(auth, identity_id)
        rows = [{k: v for k, v in s.items() if k != "clientSecretHash"} for s in self.state.client_secrets.get(identity_id, [])]
        return 200, {"clientSecretData": rows}

    def ua_login(self, body: dict[str, Any], headers: Any, peer: str) -> tuple[int, dict[str, Any]]:
        _require(body, "clientId", "clientSecret")
        for identity_id, ua in self.state.universal_auth.items():
            if ua["clientId"] != body["clientId"]:
                continue
            if not _trusted(ua["clientSecretTrustedIps"], self.source_ip or peer):
                raise _ApiError(403, "You are not allowed to access this resource from the current IP address", "ForbiddenError")
            for secret in self.state.client_secrets.get(identity_id, []):
                if secret["isClientSecretRevoked"] or not body["clientSecret"].startswith(secret["clientSecretPrefix"]):
                    continue
                if verify_secret(body["clientSecret"], secret["clientSecretHash"]):
                    secret["clientSecretNumUses"] += 1
                    token = self._token("identity", identity_id, self.state.identities[identity_id]["orgId"])
                    return 200, {"accessToken": token, "expiresIn": ua["accessTokenTTL"],
                                 "accessTokenMaxTTL": ua["accessTokenMaxTTL"], "tokenType": "Bearer"}
        raise _unauthorized()


_ID = r"(?P<ident>[0-9a-f-]{36})"
Route = tuple[str, "re.Pattern[str]", str]
ROUTES: list[Route] = [
    ("GET", re.compile(r"^/api/status$"), "status"),
    ("POST", re.compile(r"^/api/v1/admin/bootstrap$"), "bootstrap"),
    ("POST", re.compile(r"^/api/v3/auth/login$"), "login"),
    ("POST", re.compile(r"^/api/v3/auth/select-organization$"), "select_org"),
    ("GET", re.compile(r"^/api/v1/organization$"), "list_orgs"),
    ("POST", re.compile(r"^/api/v1/identities$"), "create_identity"),
    ("GET", re.compile(r"^/api/v2/organizations/" + _ID + r"/identity-memberships$"), "list_identity_memberships"),
    ("POST", re.compile(r"^/api/v1/auth/universal-auth/identities/" + _ID + r"$"), "attach_ua"),
    ("GET", re.compile(r"^/api/v1/auth/universal-auth/identities/" + _ID + r"$"), "get_ua"),
    ("PATCH", re.compile(r"^/api/v1/auth/universal-auth/identities/" + _ID + r"$"), "update_ua"),
    ("POST", re.compile(r"^/api/v1/auth/universal-auth/identities/" + _ID + r"/client-secrets$"), "create_client_secret"),
    ("GET", re.compile(r"^/api/v1/auth/universal-auth/identities/" + _ID + r"/client-secrets$"), "list_client_secrets"),
    ("POST", re.compile(r"^/api/v1/auth/universal-auth/login$"), "ua_login"),
]


def _handler_for(api: InfisicalStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            pass  # request lines carry no secrets, but tests want a quiet stderr

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _dispatch(self, method: str) -> None:
            path = self.path.split("?", 1)[0]
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            req_id = f"req-{secrets.token_hex(6)}"
            with api._lock:
                api.calls.append((method, path))
                try:
                    body = json.loads(raw) if raw else {}
                    if not isinstance(body, dict):
                        raise _ApiError(422, "body must be an object", "ValidationFailure")
                    for verb, pattern, name in ROUTES:
                        match = pattern.match(path)
                        if verb == method and match:
                            fn: Callable[..., tuple[int, dict[str, Any]]] = getattr(api, name)
                            status, payload = fn(body, self.headers, self.client_address[0], *match.groups())
                            break
                    else:
                        raise _ApiError(404, f"Route {method}:{path} not found", "Not Found")
                    drop = name == "bootstrap" and status == 200 and api.drop_after_bootstrap
                    if drop:
                        api.drop_after_bootstrap = False
                except _ApiError as exc:
                    status, drop = exc.status, False
                    msg: Any = json.loads(exc.message) if exc.status == 422 and exc.message.startswith("[") else exc.message
                    payload = {"reqId": req_id, "statusCode": exc.status, "message": msg, "error": exc.error}
                except json.JSONDecodeError:
                    status, drop = 400, False
                    payload = {"reqId": req_id, "statusCode": 400, "message": "Body is not valid JSON", "error": "BadRequest"}
                if api.on_change is not None:  # also after an error: a refused PATCH may have changed fields first
                    api.on_change()
            if drop:
                self.close_connection = True
                self.connection.close()
                return
            self._send(status, payload)

        def do_GET(self) -> None:  # noqa: N802 - stdlib name
            self._dispatch("GET")

        def do_POST(self) -> None:  # noqa: N802 - stdlib name
            self._dispatch("POST")

        def do_PATCH(self) -> None:  # noqa: N802 - stdlib name
            self._dispatch("PATCH")

    return Handler
