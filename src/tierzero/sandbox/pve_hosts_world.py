"""The stand-in Proxmox hosts in the sandbox world (document "pve-hosts"): every host's and the
cluster's state as JSON (bytes as base64, sets as sorted lists), so a second sandbox run, or
one after a kill -9, finds the cluster, packages, keys and tokens the first one left.

Listening ports are not part of the world: each run gets fresh ones.
"""

from __future__ import annotations

import base64
import dataclasses
from typing import TYPE_CHECKING, Any

from tierzero.sandbox.pve_commands import CephState, ClusterState, HostState

if TYPE_CHECKING:
    from tierzero.sandbox.pve_hosts import PveHosts
    from tierzero.sandbox.world import WorldFile

DOCUMENT = "pve-hosts"
VERSION = 1
_SETS = ("packages", "authorized", "known_hosts")
_NOT_SAVED = ("port",)


def snapshot(hosts: PveHosts) -> dict[str, Any]:
    """The document for the hosts' current state (plain JSON types only, so two compare equal
    exactly when a client could not tell them apart)."""
    return {"version": VERSION,
            "hosts": {name: _host_doc(h) for name, h in sorted(hosts.hosts.items())},
            "cluster": _cluster_doc(hosts.cluster)}


def restore(hosts: PveHosts, doc: dict[str, Any]) -> None:
    """Put a saved world in place: saved hosts replace the spec's fresh ones of the same name,
    hosts only the world knows are kept (a real host does not vanish when a spec forgets it)."""
    for name, data in doc.get("hosts", {}).items():
        hosts.hosts[name] = _host_from(name, data)
    hosts.cluster = _cluster_from(doc.get("cluster", {}))


def attach(hosts: PveHosts, file: WorldFile) -> None:
    """Restore `hosts` from `file` (when saved before) and save every later change there.
    Call before `hosts.start()`: a host saved offline must not start listening."""
    doc = file.load()
    if doc is not None:
        restore(hosts, doc)
    hosts.persist = lambda h: file.save(snapshot(h))  # the file skips a snapshot equal to the last
    hosts.sync_pve()  # the restored tokens become API tokens in a fakepve that started first
    hosts.save_world()  # hosts the spec added, and their fresh root keys, before any client sees them


# ------------------------------------------------------------------ conversions


def _host_doc(host: HostState) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for f in dataclasses.fields(HostState):
        if f.name in _NOT_SAVED:
            continue
        value = getattr(host, f.name)
        if f.name in _SETS:
            value = sorted(value)
        elif f.name == "files":
            value = {path: base64.b64encode(data).decode() for path, data in sorted(value.items())}
        doc[f.name] = value
    return doc


def _host_from(name: str, doc: dict[str, Any]) -> HostState:
    known = {f.name for f in dataclasses.fields(HostState)} - set(_NOT_SAVED)
    values = {k: v for k, v in doc.items() if k in known}
    values["name"] = name
    for key in _SETS:
        values[key] = set(values.get(key, ()))
    values["files"] = {path: base64.b64decode(data) for path, data in values.get("files", {}).items()}
    return HostState(**values)


def _cluster_doc(cluster: ClusterState) -> dict[str, Any]:
    ceph = cluster.ceph
    return {"name": cluster.name, "members": list(cluster.members), "qdevice": cluster.qdevice,
            "quorum_lost": cluster.quorum_lost, "tokens": dict(sorted(cluster.tokens.items())),
            "ceph": {"initialized": ceph.initialized, "network": ceph.network, "mons": list(ceph.mons),
                     "osds": [[i, h, d] for i, h, d in ceph.osds],
                     "pools": {name: dict(pool) for name, pool in sorted(ceph.pools.items())},
                     "forced_health": ceph.forced_health, "forced_checks": dict(ceph.forced_checks), "down": ceph.down}}


def _cluster_from(doc: dict[str, Any]) -> ClusterState:
    raw = dict(doc.get("ceph", {}))
    raw["osds"] = [(int(i), str(h), str(d)) for i, h, d in raw.get("osds", [])]
    ceph = CephState(**{k: v for k, v in raw.items() if k in {f.name for f in dataclasses.fields(CephState)}})
    values = {k: v for k, v in doc.items() if k in {f.name for f in dataclasses.fields(ClusterState)} - {"ceph"}}
    return ClusterState(**values, ceph=ceph)
