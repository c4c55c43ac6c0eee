"""The OCI cloud-controller-manager: Oracle's manifests at a pinned tag, and its config Secret
(`cloud-provider.yaml`) using instance principals, so no API key ever enters the cluster."""

from __future__ import annotations

from typing import Any

from tierzero.errors import InputError
from tierzero.render.gitops.component import Component, RenderContext, secret
from tierzero.render.gitops.versions import git_source
from tierzero.render.gitops.yamlout import dump
from tierzero.spec.addons import OciCcm

NAMESPACE = "kube-system"
CONFIG_SECRET = "oci-cloud-controller-manager"  # the name Oracle's DaemonSet mounts


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
    return [
        Component(
            name="oci-cloud-controller-manager",
            namespace=NAMESPACE,
            source=git_source("oci_ccm", spec.version),
            create_namespace=False,
            secrets=[secret(CONFIG_SECRET, NAMESPACE, {"cloud-provider.yaml": dump(config)})],
        )
    ]
