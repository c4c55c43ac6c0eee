"""The Infisical stand-ins in the sandbox (`STANDIN`, "infisical"): one Infisical API per service
(`tierzero.sandbox.infisical.server`), `pct exec` in the service containers
(`tierzero.sandbox.infisical.containers`), and the world document "infisical": each service's database
(admin user, organizations, identities, Universal Auth, client secrets, access tokens) and the
service containers' `pct exec` state, so a second sandbox run finds the instance bootstrapped
and the stored client id and secret still log in.

What is stored is what a real Infisical stores: the admin password and client secrets as salted
PBKDF2 hashes, access tokens as SHA-256 digests. Access tokens stay valid across a restart, as
a real instance's do (its tokens are signed with AUTH_SECRET from the .env, which survives a
restart, and identity tokens are rows in its database); the stand-in does not expire them.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import TYPE_CHECKING, Any

from tierzero.sandbox import pve_hosts
from tierzero.sandbox.context import Handle, SandboxContext, StandIn, Stop
from tierzero.sandbox.infisical.containers import ContainerStandIn
from tierzero.sandbox.infisical.server import InfisicalStandIn, InfisicalState, hash_secret, token_digest, verify_secret

if TYPE_CHECKING:
    from tierzero.sandbox.world import WorldFile

__all__ = ["ContainerStandIn", "InfisicalStandIn", "InfisicalState", "InfisicalWorld", "STANDIN", "SERVICES", "CONTAINERS",
           "hash_secret", "token_digest", "verify_secret"]

DOCUMENT = "infisical"
VERSION = 1
SERVICES: Handle[dict[str, InfisicalStandIn]] = Handle("infisical")  # by service name
CONTAINERS: Handle[ContainerStandIn] = Handle("infisical-containers")


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


# ------------------------------------------------------------------ the stand-in


def _start(box: SandboxContext) -> Stop:
    """One API stand-in per Infisical service, reached as ("infisical", NAME); the SSH host
    stand-in's `pct exec` runs in one ContainerStandIn. The LXC template is not seeded: the
    product downloads it from the node's appliance index, as on a fresh install."""
    services = box.spec.infisical_services()
    if not services:
        return lambda: None
    world = InfisicalWorld(box.world.file(DOCUMENT)) if box.world is not None else None
    containers = ContainerStandIn()
    if world is not None:
        world.restore_containers(containers)

    def pct(host: str, vmid: int, script: str, stdin: str) -> tuple[int, str, str]:
        result = containers.pct(["exec", str(vmid), "--", "sh", "-c", script], stdin)
        if world is not None:  # runs under the SSH stand-in's lock, before the exit status goes out
            world.containers_changed(containers)
        return result

    hosts = box.get(pve_hosts.HOSTS)
    if hosts is not None:
        hosts.pct_handler = pct
    px = box.spec.proxmox
    standins: dict[str, InfisicalStandIn] = {}
    try:
        for svc in services:
            standin = InfisicalStandIn().start()
            standins[svc.name] = standin
            if world is not None:  # nobody knows the port yet, so restoring after start is safe
                world.track(svc.name, standin)
            standin.source_ip = px.gateway  # calls come from the node network, as the cluster's would
            box.connections.add("infisical", svc.name, standin.endpoint())
    except BaseException:
        for standin in standins.values():
            standin.stop()
        raise
    box.put(SERVICES, standins)
    box.put(CONTAINERS, containers)

    def stop() -> None:
        for standin in standins.values():
            standin.stop()

    return stop


STANDIN = StandIn("infisical", _start)
