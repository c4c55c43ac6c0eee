"""The cloud layer's inputs, from the spec: `tierzero.auto.tfvars.json`. Python never writes HCL."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tierzero.errors import InputError
from tierzero.freetier.limits import Limits
from tierzero.spec.cloud import OCI
from tierzero.spec.models import Platform


def _oci(platform: Platform) -> OCI:
    if platform.oci is None:
        raise InputError("the spec has no cloud.oci section, so there is no cloud layer to render")
    return platform.oci


def _ssh_key(oci: OCI, files: Mapping[str, bytes]) -> str:
    name = str(oci.ssh_public_key)
    data = files.get(name)
    if data is None:
        raise InputError(
            f"cannot read the SSH public key {name} (cloud.oci.ssh_public_key)",
            hint="generate it first (tierzero creates .tierzero/id_ed25519 on init) "
            "or point ssh_public_key at an existing .pub file",
        )
    key = data.decode(errors="replace").strip()
    if not key:
        raise InputError(f"the SSH public key file {name} is empty")
    return key


HOURS_IN_LONGEST_MONTH = 31 * 24
TFVARS_FILE = "tierzero.auto.tfvars.json"


def json_text(data: Any) -> str:
    """Deterministic JSON: sorted keys, two-space indent, trailing newline."""
    return json.dumps(data, sort_keys=True, indent=2) + "\n"


@dataclass(frozen=True)
class S3StateBackend:
    """An S3-compatible state bucket (OCI Object Storage's S3 API, MinIO) with lockfile locking.
    Credentials travel as environment variables, never in a file."""

    bucket: str
    key: str
    region: str
    endpoint: str
    access_key: str
    secret_key: str
    max_retries: int | None = None  # None: the tool's default (5)

    def config(self) -> dict[str, Any]:
        retries = {} if self.max_retries is None else {"max_retries": self.max_retries}
        return retries | {
            "bucket": self.bucket,
            "key": self.key,
            "region": self.region,
            "endpoints": {"s3": self.endpoint},
            "use_lockfile": True,
            "use_path_style": True,
            # Not AWS: no STS, no IMDS, no region list, and OCI rejects the newer checksum headers.
            "skip_credentials_validation": True,
            "skip_region_validation": True,
            "skip_requesting_account_id": True,
            "skip_metadata_api_check": True,
            "skip_s3_checksum": True,
        }

    def env(self) -> dict[str, str]:
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key}

    def secrets(self) -> list[str]:
        return [self.access_key, self.secret_key]




def limit_vars(limits: Limits) -> dict[str, int]:
    """The module's limit_* variables from the free-tier data, so the module's own checks follow
    the limits in force on the day (A1 hour allowances as the steady load a 31-day month allows)."""
    ocpus, memory_gb = limits.a1_equivalent(HOURS_IN_LONGEST_MONTH)
    return {
        "limit_a1_ocpus": int(ocpus),
        "limit_a1_memory_gb": int(memory_gb),
        "limit_micro_instances": int(limits["micro_instances"]),
        "limit_block_storage_gb": int(limits["block_storage_gb"]),
        "limit_network_load_balancers": int(limits["network_load_balancers"]),
    }


PENDING_IMAGE = "ocid1.image.oc1..tierzero-imports-it-at-deploy"  # plan's stand-in for an image the deploy imports


def talos_nodes(platform: Platform, images: Mapping[str, str] | None = None) -> dict[str, dict[str, str]]:
    """The module's talos_nodes: per A1 instance that runs Talos, its cluster, role, private IP and image
    (`images`: cluster name -> image OCID the deploy imported; else the cluster's image_ocid, else PENDING_IMAGE)."""
    images = images or {}
    out = {}
    for cluster, node, inst in platform.talos_instances():
        role = cluster.node_and_role(node.name)[0]
        if node.ip.address is None:
            raise InputError(f"node {node.name} on A1 instance {inst.name} needs a static `ip` in the VCN subnet",
                             hint="give it an address like 10.0.1.11/24 (the machine config and talosconfig name it)")
        image = images.get(cluster.name) or cluster.image_ocid or PENDING_IMAGE
        out[inst.name] = {"cluster": cluster.name, "role": role, "private_ip": str(node.ip.address), "image_id": image}
    return out


TALOS_API_PORT, KUBERNETES_API_PORT = 50000, 6443


def vm_network(platform: Platform) -> dict[str, Any] | None:
    """The module's vm_network: the Proxmox VMs' network behind A1 hosts, routed through the first host (it carries
    the network's gateway, `tierzero.phases.vm_network`), and the TCP ports the bastion's forwards reach there: the
    Talos API, the Kubernetes API (the VIP) and each service's API. None without Proxmox hosts on instances."""
    from tierzero.render.proxmox_hosts import vm_network_wanted
    from tierzero.render.services.infisical import API_PORT

    if not vm_network_wanted(platform):
        return None
    px = platform.proxmox
    via = next(n.instance for n in px.nodes if n.instance)
    if px.nodes[0].instance is None:
        raise InputError(f"the VM network's gateway is on the first Proxmox node ({px.nodes[0].name}), which is not a cloud instance",
                         hint="list a node on a cloud instance first in hypervisors.proxmox.nodes")
    ports = {TALOS_API_PORT, KUBERNETES_API_PORT} | ({API_PORT} if platform.infisical_services() else set())
    return {"cidr": str(px.network), "via_instance": via, "ports": sorted(ports)}


def talos_user_data_env(configs: Mapping[str, bytes]) -> dict[str, str]:
    """The sensitive talos_user_data variable as an environment variable (instance name -> machine config,
    base64): it never lands in the tfvars file that `plan` renders or the apply writes."""
    import base64

    data = {name: base64.b64encode(config).decode() for name, config in sorted(configs.items())}
    return {"TF_VAR_talos_user_data": json.dumps(data, sort_keys=True)}


def tfvars_for(
    platform: Platform,
    *,
    files: Mapping[str, bytes] | None = None,
    ssh_public_key: str | None = None,
    limits: Limits | None = None,
    placed: Mapping[str, str] | None = None,
    images: Mapping[str, str] | None = None,
    host_image: str | None = None,
) -> dict[str, Any]:
    """Variables of the `oci` (and `oci_twin`) module. The key is `ssh_public_key`, else the file
    the spec names, from `files` (`tierzero.spec.LoadedSpec.files`, read beside the spec). With `limits` (see
    `tierzero.freetier.limits.limits_on`) the module checks against them instead of its defaults.
    `placed` maps instances that exist to the AD they run in: an instance the spec does not pin
    stays there (capacity hunting may have moved it; going back would replace it). `host_image`: the
    Proxmox VE hosts' image OCID (the deploy's `cloud/host-image` step; else cloud.oci.host_image.image_ocid)."""
    oci = _oci(platform)
    first_ad = oci.availability_domains[0]
    placed = placed or {}
    reserved = {r.name: {"instance": r.instance} for r in oci.reserved_ips}
    bastions = [m.name for m in oci.micro_instances if "bastion" in m.roles]
    # The bastion is the stable way in, so it always gets a reserved address.
    if bastions and not any(r["instance"] == bastions[0] for r in reserved.values()):
        name = next(n for n in (f"{bastions[0]}-ip", *(f"{bastions[0]}-ip-{i}" for i in range(2, 99))) if n not in reserved)
        reserved[name] = {"instance": bastions[0]}
    values: dict[str, Any] = limit_vars(limits) if limits is not None else {}
    return values | {
        "name_prefix": platform.metadata.name,
        "region": oci.region,
        "tenancy_ocid": oci.tenancy_ocid,
        "compartment_ocid": oci.compartment_ocid,
        "compartment_name": oci.compartment_name,
        "config_profile": oci.config_profile,
        "vcn_cidr": oci.network.vcn_cidr,
        "subnet_cidr": oci.network.subnet_cidr,
        "admin_cidrs": list(oci.network.admin_cidrs),
        "allow_http": oci.network.allow_http,
        "allow_icmp": oci.network.allow_icmp,
        "ceph_between_hosts": platform.has_proxmox and platform.proxmox.ceph.enabled,
        "ssh_authorized_keys": ssh_public_key.strip() if ssh_public_key else _ssh_key(oci, files or {}),
        "a1_instances": {
            a.name: {
                "ocpus": a.ocpus,
                "memory_gb": a.memory_gb,
                "boot_volume_gb": a.boot_volume_gb,
                "availability_domain": a.availability_domain or placed.get(a.name) or first_ad,
            }
            for a in oci.a1_instances
        },
        "micro_instances": {
            m.name: {"roles": list(m.roles), "boot_volume_gb": m.boot_volume_gb, "availability_domain": placed.get(m.name) or first_ad}
            for m in oci.micro_instances
        },
        "reserved_ips": reserved,
        "block_volumes": {v.name: {"size_gb": v.size_gb, "instance": v.instance} for v in oci.block_volumes},
        "budget_amount": oci.budget.amount,
        "budget_alert_email": oci.budget.alert_email,
        "budget_alert_threshold_percent": oci.budget.alert_threshold_percent,
        "freeform_tags": {"tierzero-platform": platform.metadata.name},
        "talos_nodes": talos_nodes(platform, images),
        "a1_image_ocid": host_image or oci.host_image.image_ocid,
        "vm_network": vm_network(platform),
        "talos_instance_principals": any(
            c.on_instances and c.addons.oci_ccm is not None and c.addons.oci_ccm.enabled and c.addons.oci_ccm.use_instance_principals
            for c in platform.clusters),
    }


def ad_candidates(platform: Platform) -> dict[str, list[str]]:
    """Availability domains each instance may be moved to when capacity runs out: a pinned A1
    instance stays where it is pinned, every other instance rotates through the spec's list."""
    oci = _oci(platform)
    ads = list(oci.availability_domains)
    found = {a.name: [a.availability_domain] if a.availability_domain else ads for a in oci.a1_instances}
    found.update({m.name: ads for m in oci.micro_instances})
    return found


def state_backend(platform: Platform, resolve_secret: Callable[[str], str]) -> S3StateBackend | None:
    """The S3-compatible state backend of the spec (None: local state): cloud.oci.state_backend, else
    `<prefix>/cloud.tfstate` in the shared_state bucket. Secrets are resolved by the caller's
    resolver (env:, file:, sops: references) and only ever travel as env vars."""
    backend = _oci(platform).state_backend
    shared = platform.shared_state
    if backend.type == "local" and shared is not None:  # the team's bucket holds the OpenTofu state too, beside the lock
        return S3StateBackend(bucket=shared.bucket, key=f"{shared.prefix}/cloud.tfstate", region=shared.region, endpoint=shared.endpoint.rstrip("/"),
                              access_key=resolve_secret(shared.access_key), secret_key=resolve_secret(shared.secret_key))
    if backend.type == "local":
        return None
    return S3StateBackend(
        bucket=backend.bucket,
        key=backend.key,
        region=backend.region,
        endpoint=backend.endpoint,
        access_key=resolve_secret(backend.access_key),
        secret_key=resolve_secret(backend.secret_key),
    )


# The outputs of the cloud layer tierzero reads back; both modules declare them (a test checks).
CLOUD_OUTPUTS = ("instances", "bastion_ip", "compartment_id", "vcn_id", "subnet_id", "budget_id", "network_load_balancers")
# A null output (bastion_ip without a bastion) is left out of `output -json`; a state applied before the
# Talos-on-A1 layer has no network_load_balancers.
_REQUIRED_OUTPUTS = tuple(o for o in CLOUD_OUTPUTS if o not in ("bastion_ip", "network_load_balancers"))


@dataclass(frozen=True)
class CloudInstance:
    name: str
    ocid: str
    kind: str  # "a1" | "micro"
    shape: str
    roles: tuple[str, ...]
    availability_domain: str
    private_ip: str
    public_ip: str | None


@dataclass(frozen=True)
class CloudOutputs:
    instances: dict[str, CloudInstance]
    bastion_ip: str | None
    compartment_id: str
    vcn_id: str
    subnet_id: str
    budget_id: str
    network_load_balancers: dict[str, str] = field(default_factory=dict)  # cluster -> public IP address


def placed_ads(outputs: Mapping[str, Any]) -> dict[str, str]:
    """Where the instances of an applied cloud layer run (empty before the first apply)."""
    return {name: str(item["ad"]) for name, item in (outputs.get("instances") or {}).items() if item.get("ad")}


def parse_outputs(outputs: Mapping[str, Any]) -> CloudOutputs:
    """Typed view of `TofuRunner.output()` for the cloud layer (real or twin)."""
    missing = [name for name in _REQUIRED_OUTPUTS if name not in outputs]
    if missing:
        raise InputError(f"the cloud layer state has no outputs {', '.join(missing)}", hint="apply the cloud layer first")
    instances = {
        name: CloudInstance(
            name=name,
            ocid=item["ocid"],
            kind=item["kind"],
            shape=item["shape"],
            roles=tuple(item["roles"]),
            availability_domain=item["ad"],
            private_ip=item["private_ip"],
            public_ip=item.get("public_ip") or None,
        )
        for name, item in (outputs["instances"] or {}).items()
    }
    return CloudOutputs(
        instances=instances,
        bastion_ip=outputs.get("bastion_ip"),
        compartment_id=outputs["compartment_id"],
        vcn_id=outputs["vcn_id"],
        subnet_id=outputs["subnet_id"],
        budget_id=outputs["budget_id"],
        network_load_balancers={c: str(v["ip_address"]) for c, v in (outputs.get("network_load_balancers") or {}).items()},
    )
