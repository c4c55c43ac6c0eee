"""The Infisical stand-ins in the sandbox world (document "infisical"): each service's database
(admin user, organizations, identities, Universal Auth, client secrets, access tokens) and the
service containers' `pct exec` state, so a second sandbox run finds the instance bootstrapped
and the stored client id and secret still log in.

What is stored is what a real Infisical stores: the admin password and client secrets as salted
PBKDF2 hashes, access tokens as SHA-256 digests. Access tokens stay valid across a restart, as
a real instance's do (its tokens are signed with AUTH_SECRET from the .env, which survives a
restart, and identity tokens are rows in its database); the stand-in does not expire them.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import secrets
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tierzero.sandbox.containers import ContainerStandIn
    from tierzero.sandbox.infisical import InfisicalStandIn, InfisicalState
    from tierzero.sandbox.world import WorldFile

DOCUMENT = "infisical"
VERSION = 1
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


# ------------------------------------------------------------------ conversions


def state_doc(state: InfisicalState) -> dict[str, Any]:
    """The state as plain JSON types (a deep copy: later requests do not change it)."""
    doc = dataclasses.asdict(state)
    doc["memberships"] = {user: sorted(orgs) for user, orgs in sorted(state.memberships.items())}
    return doc


def restore_state(state: InfisicalState, doc: dict[str, Any]) -> None:
    fresh = dataclasses.asdict(type(state)())  # defaults for anything an older document lacks
    for f in dataclasses.fields(state):
        value = doc.get(f.name, fresh[f.name])
        if f.name == "memberships":
            value = {user: set(orgs) for user, orgs in value.items()}
        setattr(state, f.name, value)


def containers_doc(containers: ContainerStandIn) -> dict[str, Any]:
    return {"docker_present": containers.docker_present,
            "files": [[vmid, path, mode, content] for (vmid, path), (mode, content) in sorted(containers.files.items())]}


def restore_containers(containers: ContainerStandIn, doc: dict[str, Any]) -> None:
    containers.docker_present = bool(doc.get("docker_present", False))
    containers.files = {(int(vmid), path): (mode, content) for vmid, path, mode, content in doc.get("files", [])}


# ------------------------------------------------------------------ the document


class InfisicalWorld:
    """One document for every Infisical service of the spec plus the containers. Services the
    document holds but the spec no longer names are kept, not dropped."""

    def __init__(self, file: WorldFile) -> None:
        self.file = file
        self._lock = threading.Lock()
        loaded = file.load() or {}
        self._doc: dict[str, Any] = {"version": VERSION, "services": dict(loaded.get("services", {})),
                                     "containers": loaded.get("containers")}

    def track(self, name: str, standin: InfisicalStandIn) -> None:
        """Restore `standin` from the document, then save its state after every request that changed it."""
        saved = self._doc["services"].get(name)
        if saved is not None:
            restore_state(standin.state, saved)
        standin.on_change = lambda: self._put(("services", name), state_doc(standin.state))

    def restore_containers(self, containers: ContainerStandIn) -> None:
        if self._doc["containers"] is not None:
            restore_containers(containers, self._doc["containers"])

    def containers_changed(self, containers: ContainerStandIn) -> None:
        self._put(("containers",), containers_doc(containers))

    def _put(self, where: tuple[str, ...], value: dict[str, Any]) -> None:
        # Callers hold their own stand-in's lock; this lock is always taken last, so no cycle.
        with self._lock:
            parent = self._doc
            for key in where[:-1]:
                parent = parent[key]
            before = parent.get(where[-1])
            parent[where[-1]] = value
            try:
                self.file.save(self._doc)
            except BaseException:
                parent[where[-1]] = before  # not on disk: the next request tries again
                raise
