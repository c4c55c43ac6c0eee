"""The OCI cloud-controller-manager: Oracle's manifests at a pinned tag, and its config Secret
(`cloud-provider.yaml`) using instance principals, so no API key ever enters the cluster. A cluster on
A1 instances (Talos directly on OCI) also gets the block-volume CSI driver from the same release, with the
same config in the Secret it reads, `oci-volume-provisioner` key `config.yaml` (oracle/oci-cloud-controller-manager
docs/container-storage-interface.md); the OpenTofu layer creates the dynamic group and policy both use."""

from __future__ import annotations

from typing import Any

from tierzero.errors import InputError
from tierzero.render.gitops.component import Component, RenderContext, secret
from tierzero.render.gitops.versions import git_source
from tierzero.render.gitops.yamlout import dump
from tierzero.spec.addons import OciCcm

NAMESPACE = "kube-system"
CONFIG_SECRET = "oci-cloud-controller-manager"  # the name Oracle's DaemonSet mounts
CSI_SECRET = "oci-volume-provisioner"  # the name Oracle's CSI controller mounts


def cloud_provider_config(ctx: RenderContext) -> dict[str, Any]:
    spec: OciCcm = ctx.cluster.addons.oci_ccm  # type: ignore[assignment]
    oci = ctx.platform.oci
    if oci is None:
        raise InputError(f"clusters[{ctx.cluster.name}].addons.oci_ccm needs cloud.oci in the spec", hint="remove oci_ccm for clusters on your own hosts")
    if not spec.use_instance_principals:
        raise InputError(
            f"clusters[{ctx.cluster.name}].addons.oci_ccm: only instance principals are supported",
            hint="set use_instance_principals: true and allow the hosts' dynamic group to manage load-balancers",
        )
    config: dict[str, Any] = {"useInstancePrincipals": True, "auth": {"region": oci.region}}
    compartment = oci.compartment_ocid or ctx.facts.get("compartment_ocid")
    if compartment:
        config["compartment"] = compartment
    if ctx.facts.get("vcn_ocid"):
        config["vcn"] = ctx.facts["vcn_ocid"]
    load_balancer: dict[str, Any] = {"securityListManagementMode": "None"}  # OpenTofu owns the security lists
    subnet = spec.load_balancer_subnet or ctx.facts.get("subnet_ocid")
    if subnet:
        load_balancer["subnet1"] = subnet
    config["loadBalancer"] = load_balancer
    return config


def build(ctx: RenderContext) -> list[Component]:
    spec: OciCcm = ctx.cluster.addons.oci_ccm  # type: ignore[assignment]
    config = cloud_provider_config(ctx)
    if "subnet1" not in config["loadBalancer"]:
        ctx.notes.append("oci_ccm: no load-balancer subnet yet (set oci_ccm.load_balancer_subnet or deploy the cloud first)")
    out = [
        Component(
            name="oci-cloud-controller-manager",
            namespace=NAMESPACE,
            source=git_source("oci_ccm", spec.version),
            create_namespace=False,
            secrets=[secret(CONFIG_SECRET, NAMESPACE, {"cloud-provider.yaml": dump(config)})],
        )
    ]
    if ctx.cluster.on_instances:
        out.append(Component(
            name="oci-csi",
            namespace=NAMESPACE,
            source=git_source("oci_csi", spec.version),
            create_namespace=False,
            secrets=[secret(CSI_SECRET, NAMESPACE, {"config.yaml": dump(config)})],
        ))
    return out
