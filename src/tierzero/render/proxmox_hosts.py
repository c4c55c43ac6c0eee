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


SDN_ZONE = "tierzero"  # a zone ID: [a-z][a-z0-9]*, at most 8 characters (pve-network Zones/Plugin.pm)
VXLAN_VNI = 10010
VXLAN_MTU = 1450  # the uplink's 1500 less VXLAN's 50 bytes (pve-docs pvesdn.adoc 310-311)


def vm_network_wanted(spec: Any) -> bool:
    """Hosts on cloud instances share no L2: their VM network is tierzero's VXLAN zone."""
    return spec.has_proxmox and any(n.instance for n in spec.proxmox.nodes)


def emulation_note(spec: Any) -> str | None:
    """What a user should expect from VMs without KVM (every A1 instance), or None."""
    if not spec.has_proxmox or (not any(n.instance for n in spec.proxmox.nodes) and not spec.proxmox.allow_software_emulation):
        return None
    return ("VMs on hosts without /dev/kvm (every OCI A1 instance: no nested virtualisation) run with `kvm: 0`, "
            "under QEMU's TCG software emulation with cpu `max`: expect CPU-bound work several times slower than "
            "on KVM (QEMU translates every guest instruction; tierzero has not measured the factor on A1)")


def host_changes(spec: Any, role: str, role_privileges: Sequence[str]) -> list[str]:
    px = spec.proxmox
    lines = []
    cloud = [n for n in px.nodes if n.instance]
    if cloud:
        port = px.install
        lines.append(f"host preparation on {', '.join(n.name for n in cloud)} (as `{port.image_user}` with sudo): hostname and "
                     f"/etc/hosts for Proxmox, cloud-init told to keep them, the {port.port} {port.version} repository "
                     f"({port.repository}, Debian {port.suite}) and its key, `apt-get install {' '.join(port.packages)}`, "
                     "a reboot into its kernel, root SSH by the workspace key. "
                     f"{port.port.upper()} is a community port of Proxmox VE to arm64, not a Proxmox build")
        gateway_host = px.nodes[0].name
        lines.append(f"VM network {px.bridge}: SDN VXLAN zone {SDN_ZONE} between the hosts' VCN addresses (UDP 4789, MTU "
                     f"{VXLAN_MTU}), vnet {px.bridge} (VNI {VXLAN_VNI}), applied through the API; the gateway "
                     f"{px.gateway} with NAT (masquerade) to the VCN on {gateway_host}")
    note = emulation_note(spec)
    if note:
        lines.append(note)
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
        if cluster.on_instances:
            continue  # tierzero.render.oci_talos: nothing of it runs on a Proxmox host
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
