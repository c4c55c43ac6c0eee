"""What tierzero changes on the Proxmox VE hosts for a spec, in words (`tierzero plan`, the README):
a pure function of the spec, so the user sees it before anything runs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def wanted_content(spec: Any) -> list[str]:
    """Content types the image storage must hold: `import` (download-url of the Talos disk image)
    and `snippets` (the NoCloud user files) for clusters, `vztmpl` for LXC services."""
    out = ["import", "snippets"] if spec.clusters else []
    if spec.infisical_services():
        out.append("vztmpl")
    return out


def host_changes(spec: Any, role: str, role_privileges: Sequence[str]) -> list[str]:
    px = spec.proxmox
    lines = []
    if len(px.nodes) > 1:
        lines.append(f"cluster {px.cluster_name}: `pvecm create` on {px.nodes[0].name}, `pvecm add` on the others "
                     "(root SSH keys added to /root/.ssh/authorized_keys between them)")
    if px.qdevice is not None and len(px.nodes) % 2 == 0:
        lines.append(f"QDevice: corosync-qdevice installed on every node, corosync-qnetd on {px.qdevice.host}, "
                     "the nodes' root keys in its /root/.ssh/authorized_keys, `pvecm qdevice setup`")
    if all(n.token_id for n in px.nodes):
        lines.append(f"API token: yours ({px.nodes[0].token_id}); it needs role {role} on / (checked before anything changes)")
    else:
        lines.append(f"API token root@pam!tierzero, privilege-separated, with one ACL entry on /: role {role} "
                     f"({len(role_privileges)} privileges: {', '.join(role_privileges)})")
    content = wanted_content(spec)
    if content:
        lines.append(f"storage {px.image_storage}: content {','.join(content)} added where missing (PUT /storage/{px.image_storage}; "
                     "the content it has is kept)")
    for cluster in spec.clusters:
        hosts = sorted({n.node for _, n in cluster.nodes()})
        lines.append(f"{cluster.name}: the schematic registered with {cluster.image_factory}; the Talos {cluster.talos_version} nocloud "
                     f"image (qcow2) in {px.image_storage}:import on {', '.join(hosts)}; one cloud-init user file per VM in "
                     f"{px.image_storage}:snippets (tierzero-<node>-user.yaml, mode 0600, it holds the machine config)")
    if px.ceph.enabled:
        lines.append("Ceph: `pveceph install`, monitors, OSDs on the given devices, pool " + px.ceph.pool)
    if px.tailscale.enabled:
        lines.append("Tailscale: installed from tailscale.com and joined with your auth key")
    for svc in spec.infisical_services():
        lines.append(f"LXC {svc.vmid} ({svc.name}) on {svc.node}: unprivileged, features nesting=1 (API) and keyctl=1 "
                     "(`pct set` as root: no API token may set it); its template from the node's appliance index")
    return lines
