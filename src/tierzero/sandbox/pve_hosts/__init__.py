"""The stand-in Proxmox VE hosts in the sandbox (`STANDIN`, "pve-hosts"): SSH servers playing the
hosts' shell (`tierzero.sandbox.pve_hosts.server`) and their world document "pve-hosts": every
host's and the cluster's state as JSON (bytes as base64, sets as sorted lists), so a second
sandbox run, or one after a kill -9, finds the cluster, packages, keys and tokens the first one left.

Listening ports are not part of the world: each run gets fresh ones.
"""

from __future__ import annotations

import base64
import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tierzero.sandbox.context import Handle, SandboxContext, StandIn, Stop
from tierzero.sandbox.pve_hosts.cloud_image import PROXMOX_PACKAGES, AptRepository, as_cloud_instance
from tierzero.sandbox.pve_hosts.commands import GiB, CephState, ClusterState, HostState
from tierzero.sandbox.pve_hosts.server import PveHosts

if TYPE_CHECKING:
    import asyncssh

    from tierzero.sandbox.world import WorldFile

__all__ = ["CephState", "ClusterState", "HostState", "PveHosts", "hosts_for_spec", "start_pve_hosts", "HOSTS", "STANDIN"]

DOCUMENT = "pve-hosts"
HOSTS: Handle[PveHosts] = Handle("pve-hosts")
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
            "token_privsep": dict(sorted(cluster.token_privsep.items())),
            "roles": {name: list(privs) for name, privs in sorted(cluster.roles.items())}, "acl": [dict(e) for e in cluster.acl],
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


# ------------------------------------------------------------------ the stand-in


def start_pve_hosts(
    nodes: list[tuple[str, str]],
    authorized_key_file: Path | str,
    *,
    witnesses: list[tuple[str, str]] = (),  # type: ignore[assignment]
    public: dict[str, str] | None = None,
    bridges: dict[str, list[str]] | None = None,
    pve: Any = None,
    kvm: bool = True,
    host_key: asyncssh.SSHKey | Path | None = None,
    world: Any = None,
    cloud: dict[str, CloudBoot] | None = None,
    repositories: list[AptRepository] = (),  # type: ignore[assignment]
) -> PveHosts:
    """Start one SSH stand-in per (name, address) host, plus quorum witnesses; returns the handle.
    `cloud` names the hosts that are cloud instances booted from an image (see `CloudBoot`), the
    others are fresh Proxmox VE installs. `world` (a `tierzero.sandbox.world.WorldFile`) restores
    the hosts saved there and keeps it current."""
    key = Path(authorized_key_file).read_text()
    cloud = cloud or {}
    hosts = [HostState(name, addr, kvm=kvm, public_address=(public or {}).get(name)) for name, addr in nodes]
    for host in hosts:
        host.bridges = list((bridges or {}).get(host.name, host.bridges))
    hosts += [HostState(name, addr, witness=True, memory_total=1 * GiB, memory_available=GiB // 2, public_address=(public or {}).get(name))
              for name, addr in witnesses]
    for host in hosts:
        boot = cloud.get(host.name)
        if boot is not None:
            as_cloud_instance(host, image_user=boot.image_user, hostname_label=boot.hostname_label, key=key,
                              codename=boot.codename, arch=boot.arch)
            # PRE-SEEDED hardware, and why 90%: the shape's memory is the instance's (OCI shape_config);
            # what a freshly booted, idle Debian cloud instance has available is not documented by
            # OCI or Debian, so this is an assumption: kernel and base services take well under a
            # tenth of a multi-GB instance. The product only compares it with what the spec asks.
            host.memory_total, host.memory_available = boot.memory_total, boot.memory_total * 9 // 10
    handle = PveHosts(hosts, key, pve=pve, host_key=host_key)
    handle.repositories = {r.uri: r for r in repositories}
    if world is not None:
        attach(handle, world)
    return handle.start()


@dataclasses.dataclass(frozen=True)
class CloudBoot:
    """How a cloud instance first boots: the image's user, the VNIC's hostname label, its memory."""

    image_user: str
    hostname_label: str
    memory_total: int
    codename: str = "trixie"
    arch: str = "arm64"


def cloud_boots(spec: Any) -> dict[str, CloudBoot]:
    """The spec's hosts that are OCI instances. Every A1 host boots as a Debian 13 (trixie) arm64
    cloud image, whatever image the cloud layer named: the `images` step that imports a Debian
    image is not built yet (issue 14 item 1), and a Debian arm64 instance is what the host
    preparation needs. The micro witness boots as OCI's Ubuntu platform image (user `ubuntu`)."""
    from tierzero.phases.cloud import MICRO_IMAGE_USER

    oci = spec.oci
    if oci is None:
        return {}
    px = spec.proxmox
    a1 = {i.name: i for i in oci.a1_instances}
    out = {n.name: CloudBoot(px.install.image_user, n.instance, a1[n.instance].memory_gb * GiB)
           for n in px.nodes if n.instance and n.instance in a1}
    if px.qdevice is not None and px.qdevice.host in {m.name for m in oci.micro_instances}:
        out[px.qdevice.host] = CloudBoot(px.qdevice.ssh_user or MICRO_IMAGE_USER, px.qdevice.host, 1 * GiB, codename="noble", arch="amd64")
    return out


def port_repositories(spec: Any) -> list[AptRepository]:
    """The arm64 port's repository as the hosts reach it: a stand-in for the PXVIRT mirror at the
    URLs the spec names (there is no internet here), with its own signing key."""
    port = spec.proxmox.install
    key = b"-----BEGIN PGP PUBLIC KEY BLOCK-----\nsandbox stand-in for the PXVIRT signing key\n-----END PGP PUBLIC KEY BLOCK-----\n"
    return [AptRepository(port.repository.rstrip("/"), port.key_url, key, ("bookworm", "trixie"), PROXMOX_PACKAGES)]


def tailscale_repository() -> AptRepository:
    """Tailscale's stable Debian repository as the hosts reach it (a stand-in with its own key):
    pkgs.tailscale.com/stable/debian, one `<codename>.noarmor.gpg` key per release, packages
    `tailscale` and `tailscale-archive-keyring` (Tailscale docs, "Install Tailscale on Debian
    Trixie"; tailscale/tailscale scripts/installer.sh). Hosts here run trixie."""
    from tierzero.phases.pve_repos import TAILSCALE_URI

    key = b"-----BEGIN PGP PUBLIC KEY BLOCK-----\nsandbox stand-in for the Tailscale repository key\n-----END PGP PUBLIC KEY BLOCK-----\n"
    return AptRepository(TAILSCALE_URI, f"{TAILSCALE_URI}/trixie.noarmor.gpg", key, ("bookworm", "trixie"),
                         frozenset({"tailscale", "tailscale-archive-keyring"}))


def host_repositories(spec: Any) -> list[AptRepository]:
    """Every repository outside Debian and Proxmox the hosts reach: the port's and Tailscale's."""
    return [*port_repositories(spec), tailscale_repository()]


def hosts_for_spec(spec: Any) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(pve hosts, witnesses) with sandbox addresses: explicit hosts at their spec address, cloud
    instances at the private address the cloud twin gives them (10.99.0.x when the spec has no
    such instance); a witness at its spec address, or at its instance's private address."""
    from tierzero.sandbox.tofu_twin import twin_addresses

    px = spec.proxmox
    twin = twin_addresses(spec)
    nodes = [(n.name, n.address or (twin[n.instance][0] if n.instance in twin else f"10.99.0.{i + 11}")) for i, n in enumerate(px.nodes)]
    witnesses = []
    if px.qdevice is not None:
        host = px.qdevice.host
        found = twin.get(host)
        witnesses.append((host, host if host[:1].isdigit() else found[0] if found else "10.99.0.250"))
    return nodes, witnesses


def public_addresses(spec: Any) -> dict[str, str]:
    """The public address of every host that is a cloud instance (Proxmox hosts and the witness),
    as the cloud twin reports it: the cloud phase publishes them as the hosts' SSH endpoints."""
    from tierzero.sandbox.tofu_twin import twin_addresses

    twin = twin_addresses(spec)
    px = spec.proxmox
    out = {n.name: twin[n.instance][1] for n in px.nodes if n.instance in twin}
    if px.qdevice is not None and px.qdevice.host in twin:
        out[px.qdevice.host] = twin[px.qdevice.host][1]
    return out


def _start(box: SandboxContext) -> Stop:
    """SSH stand-ins for the spec's hosts (and QDevice witness), as the world saved them when the
    sandbox persists. Option pve_kvm (a saved host keeps its own). One host key, kept in the
    sandbox state directory, so the workspace known_hosts stays valid from one sandbox run to the next."""
    if not box.spec.has_proxmox:  # Talos directly on A1 instances: no Proxmox host to play
        return lambda: None
    from tierzero.workspace.keys import create_ssh_keypair

    ws = box.workspace
    if not ws.ssh_public_key.exists():
        create_ssh_keypair(ws)
    key_file = box.host_key_file("pve_hosts")
    nodes, witnesses = hosts_for_spec(box.spec)
    world = box.world.file(DOCUMENT) if box.world is not None else None
    hosts = box.put(HOSTS, start_pve_hosts(nodes, ws.ssh_public_key, witnesses=witnesses, public=public_addresses(box.spec),
                                           cloud=cloud_boots(box.spec), repositories=host_repositories(box.spec),
                                           kvm=box.options.pve_kvm,
                                           host_key=key_file, world=world))
    box.connections.ssh_key = box.connections.ssh_key or ws.ssh_key
    box.connections.known_hosts = box.connections.known_hosts or ws.root / "known_hosts"
    hosts.connections(box.connections)
    return hosts.stop


STANDIN = StandIn("pve-hosts", _start)
