"""What deploy does in OCI for clusters that run Talos directly on A1 instances, in words (`tierzero plan`):
a pure function of the spec, so the user sees it before anything runs."""

from __future__ import annotations

from typing import Any

from tierzero.render.oci_image import image_recipe


def oci_talos_changes(spec: Any) -> list[str]:
    """One line per thing deploy creates or checks in the tenancy for the clusters on A1 instances."""
    oci = spec.oci
    lines: list[str] = []
    clusters = [c for c in spec.clusters if c.on_instances]
    if oci is None or not clusters:
        return lines
    for cluster in clusters:
        nodes = [(role, n) for role, n in cluster.nodes()]
        if cluster.image_ocid:
            lines.append(f"{cluster.name}: boots your image {cluster.image_ocid} (nothing is downloaded, uploaded or imported)")
        else:
            recipe = image_recipe(cluster.talos_version, cluster.arch)
            lines.append(f"{cluster.name}: the Limits API is asked first: custom-image-count must be above 0 (it is 0 on "
                         "Always-Free-only accounts; deploy stops there, before any upload, and names the fix)")
            lines.append(f"{cluster.name}: the schematic registered with {cluster.image_factory} (POST /schematics); "
                         f"{recipe.describe()}")
            lines.append(f"{cluster.name}: uploaded to bucket {oci.image_bucket} in parts (an interrupted upload resumes), "
                         "then imported (CreateImage, its work request followed); an image already there is reused")
        names = ", ".join(f"{n.name} on {n.instance} ({role}, {n.ip.address})" for role, n in nodes)
        lines.append(f"{cluster.name}: A1 instances {names}: the machine config as user_data (read by Talos from the "
                     "instance metadata), IMDSv2 only, a public address for egress (no NAT gateway is free)")
        lines.append(f"{cluster.name}: one network load balancer for 6443 (HTTPS /readyz health check, 401) and 50000 "
                     f"(TCP health check) to the control planes; the security list admits them from {', '.join(oci.network.admin_cidrs)} only")
        lines.append(f"{cluster.name}: the load balancer is created before the instances, so the machine configs they boot with "
                     "name its public address in both APIs' certificates (machine.certSANs, cluster.apiServer.certSANs)")
        ccm = cluster.addons.oci_ccm
        if ccm is not None and ccm.enabled and ccm.use_instance_principals:
            lines.append(f"{cluster.name}: a dynamic group of these instances and a policy for the OCI cloud controller manager "
                         "and the block-volume CSI driver (instance principals: no API key in the cluster)")
        cps = ", ".join(str(n.ip.address) for n in cluster.control_planes)
        lines.append(f"{cluster.name}: etcd bootstrapped over the Talos API; talosconfig endpoints {cps} (the nodes' own addresses)")
    return lines
