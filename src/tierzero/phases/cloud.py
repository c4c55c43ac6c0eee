"""Phase "cloud": stage the OCI OpenTofu module in `.tierzero/cloud/`, write its variables from
the spec, then plan -> free-tier guard -> apply exactly that plan, hunting for A1 capacity: on
"Out of host capacity" the instances that failed move to the next availability domain and the
apply is retried with backoff until `cloud.oci.capacity_hunt_minutes` (default an hour) runs out.
Instances that exist keep the AD they landed in, and no existing A1 instance is ever replaced
(the guard allows replacing only an instance this very hunt failed to create). Instance
addresses are published as endpoints (ssh/proxmox per Proxmox node on a cloud instance).

The sandbox applies the `oci_twin` layer (terraform_data only) instead: its stand-in sets
`connections.cloud` (the layer, the tool's environment, e.g. TIERZERO_TWIN_FULL_ADS naming ADs
whose creates fail for lack of capacity, and the capacity hunt's backoff)."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tierzero.adapters.tunnel import BASTION
from tierzero.engine.step import Step, StepContext
from tierzero.errors import OperationError

if TYPE_CHECKING:
    from tierzero.adapters.connections import TofuLayer
    from tierzero.adapters.tofu_state import StateKey
    from tierzero.spec.models import OCI, Platform

# The default user of the micro instances' platform image (Canonical Ubuntu, the OpenTofu layer's
# image_operating_system); OCI platform images refuse root logins. Source: Oracle Compute docs,
# "Connecting to an instance" (see shared/facts.md).
MICRO_IMAGE_USER = "ubuntu"


def _oci(spec: Platform) -> OCI:
    if spec.oci is None:
        raise OperationError("the cloud phase runs only for a spec with cloud.oci", hint="add cloud.oci, or deploy --from hypervisors")
    return spec.oci


def _cloud_inputs(ctx: StepContext) -> CloudInputs:
    px = ctx.spec.proxmox if ctx.spec.has_proxmox else None
    hosts = tuple(CloudHost(n.name, n.instance, n.ssh.port, n.ssh.user) for n in (px.nodes if px else []) if n.instance)
    qdevice = px.qdevice if px else None
    witness = None
    if qdevice is not None:  # published only when the name is a cloud instance (else it is an address)
        witness = CloudHost(qdevice.host, qdevice.host, qdevice.ssh_port, qdevice.ssh_user or MICRO_IMAGE_USER)
    images = tuple(sorted((c.name, str(ctx.output(f"cloud/image/{c.name}")["image_id"])) for c in ctx.spec.clusters if c.on_instances))
    configs = tuple(sorted((inst.name, _config_digest(ctx, c.name, n.name)) for c, n, inst in ctx.spec.talos_instances()))
    from tierzero.phases.host_image import STEP as HOST_IMAGE, wanted

    host_image = str(ctx.output(HOST_IMAGE)["image_id"]) if wanted(ctx.spec) else None
    return CloudInputs(_oci(ctx.spec), ctx.connections.cloud.layer, hosts, witness, images, configs, _ssh_public_key(ctx), host_image)


def _ssh_public_key(ctx: StepContext) -> str:
    """The key file cloud.oci.ssh_public_key names, as it is now ("" when unreadable: the render names it):
    an edited key re-runs the step."""
    from tierzero.spec.loader import read_referenced

    name = str(_oci(ctx.spec).ssh_public_key)
    return read_referenced(ctx.spec, ctx.workspace.root.parent).get(name, b"").decode(errors="replace").strip()


def _config_digest(ctx: StepContext, cluster: str, node: str) -> str:
    """sha256 of a Talos node's machine config: from the `setup/render` step when it rendered this very spec
    (no render, no decrypt to fingerprint an unchanged deploy), else rendered here."""
    from tierzero.phases.setup import rendered_configs

    rendered = rendered_configs(ctx)
    key = f"{cluster}/{node}"
    if isinstance(rendered, Mapping) and key in rendered:
        return str(rendered[key])
    return hashlib.sha256(_talos_config(ctx, cluster, node)).hexdigest()


def _talos_config(ctx: StepContext, cluster: str, node: str, extra_sans: tuple[str, ...] = ()) -> bytes:
    """A Talos node's machine config (its user_data): rendered from the spec and the never-regenerated secrets.
    The step's inputs fingerprint it without `extra_sans` (the load balancer's address is this step's output)."""
    from tierzero.phases.setup import spec_files
    from tierzero.render.talos_spec import machine_config

    return machine_config(ctx.spec, ctx.spec.cluster(cluster), node, ctx.secrets, spec_files(ctx), extra_sans).encode()


def _workdir(ctx: StepContext) -> Any:
    return ctx.workspace.root / "cloud"


STATE_PASSPHRASE = "tofu/state-passphrase"


def state_key(ctx: StepContext) -> StateKey:
    """The keys that keep the cloud layer's state and plans encrypted at rest: a passphrase made once and
    kept in the secret store (OpenTofu's state encryption), and the workspace age key (Terraform: sealed files)."""
    import secrets

    from tierzero.adapters.tofu_state import StateKey
    from tierzero.workspace.keys import ensure_age_recipient, load_age_identity

    passphrase = ctx.secrets.get_or_create(STATE_PASSPHRASE, lambda: secrets.token_urlsafe(32))
    return StateKey(passphrase, load_age_identity(ctx.workspace), ensure_age_recipient(ctx.workspace))


def _apply_sync(ctx: StepContext, inputs: CloudInputs, on_retry: Callable[[Any], None]) -> dict[str, Any]:
    from tierzero.adapters.capacity import DEFAULT_BACKOFF, CapacityAttempt
    from tierzero.freetier.limits import limits_on
    from tierzero.layers.oci import apply_cloud_layer

    cloud_layer = ctx.connections.cloud
    layer = cloud_layer.layer

    def on_event(event: Any) -> None:
        if isinstance(event, CapacityAttempt):
            on_retry(event)

    hunt = cloud_layer.capacity_hunt_seconds
    env = dict(cloud_layer.env)

    def user_data(addresses: Mapping[str, str]) -> dict[str, bytes]:
        """Machine configs travel as a sensitive variable in the environment, never in a file; their
        certificates name the cluster's network load balancer."""
        from tierzero.render.talos_spec import load_balancer_sans

        return {inst.name: _talos_config(ctx, c.name, n.name, load_balancer_sans(c, addresses)) for c, n, inst in ctx.spec.talos_instances()}

    result = apply_cloud_layer(
        ctx.spec, _workdir(ctx), twin=layer == "oci_twin", base_dir=ctx.workspace.root.parent, limits=limits_on(),
        ssh_public_key=inputs.ssh_public_key or None,
        resolve_secret=ctx.secrets.resolve, on_event=on_event, env=env or None, images=dict(inputs.images),
        host_image=inputs.host_image,
        hunt_deadline_seconds=hunt if hunt is not None else inputs.oci.capacity_hunt_minutes * 60.0,
        backoff=cloud_layer.capacity_backoff or DEFAULT_BACKOFF, state_key=state_key(ctx), talos_user_data=user_data,
    )
    cloud = result.outputs
    endpoints = []
    for host in inputs.hosts:
        inst = cloud.instances.get(host.instance)
        if inst is None:
            continue
        address = inst.public_ip or inst.private_ip
        endpoints.append({"kind": "ssh", "name": host.name, "host": address, "port": host.ssh_port, "scheme": "ssh",
                          "extra": {"user": host.ssh_user, "address": inst.private_ip}})
        # The API listens on the VCN address; from outside it is reached through the bastion (adapters/tunnel.py).
        endpoints.append({"kind": "proxmox", "name": host.name, "host": inst.private_ip or address, "port": 8006, "verify": False})
    for _cluster, node, a1 in ctx.spec.talos_instances():  # Talos on A1: its API at the instance's public address
        inst = cloud.instances.get(a1.name)
        if inst is not None and inst.public_ip and node.ip.address is not None:
            for name in (str(node.ip.address), node.name):
                endpoints.append({"kind": "talos", "name": name, "host": inst.public_ip, "port": 50000})
    witness = inputs.witness
    inst = cloud.instances.get(witness.instance) if witness is not None else None
    if witness is not None and inst is not None:  # the QDevice witness: SSH as the platform image's user (sudo), qnetd on its private address
        endpoints.append({"kind": "ssh", "name": witness.name, "host": inst.public_ip or inst.private_ip, "port": witness.ssh_port,
                          "scheme": "ssh", "extra": {"user": witness.ssh_user, "address": inst.private_ip}})
    bastion = next((m for m in inputs.oci.micro_instances if "bastion" in m.roles), None)
    if bastion is not None and cloud.bastion_ip:  # the way in for every private address (adapters/tunnel.py)
        endpoints.append({"kind": BASTION, "name": bastion.name, "host": cloud.bastion_ip, "port": 22, "scheme": "ssh",
                          "extra": {"user": MICRO_IMAGE_USER, "role": BASTION}})
    return {
        "layer": layer,
        "compartment_id": cloud.compartment_id,
        "bastion_ip": cloud.bastion_ip,
        "instances": {n: {"ocid": i.ocid, "shape": i.shape, "private_ip": i.private_ip, "public_ip": i.public_ip,
                          "availability_domain": i.availability_domain} for n, i in cloud.instances.items()},
        "capacity_retries": result.capacity_retries,
        "network_load_balancers": cloud.network_load_balancers,
        "endpoints": endpoints,
    }


def _destroy_sync(ctx: StepContext) -> dict[str, Any]:
    from tierzero.adapters.tofu import TofuRunner
    from tierzero.adapters.tofu_state import has_local_state

    workdir = _workdir(ctx)
    if not has_local_state(workdir) and _oci(ctx.spec).state_backend.type == "local" and ctx.spec.shared_state is None:
        return {"destroyed": False}
    runner = TofuRunner(workdir, state_key=state_key(ctx))
    runner.destroy(lambda plan_json: None)  # the user confirmed the destroy; nothing is created by it
    return {"destroyed": True}


async def _destroy(ctx: StepContext) -> Mapping[str, Any]:
    ctx.wait("OpenTofu destroy")
    return await asyncio.to_thread(_destroy_sync, ctx)


@dataclass(frozen=True)
class CloudHost:
    """A Proxmox host on a cloud instance: its endpoints are published from the instance's addresses."""

    name: str
    instance: str
    ssh_port: int
    ssh_user: str


@dataclass(frozen=True)
class CloudInputs:
    oci: OCI
    layer: TofuLayer
    hosts: tuple[CloudHost, ...]
    witness: CloudHost | None = None  # the QDevice witness, when spec'd
    images: tuple[tuple[str, str], ...] = ()  # (cluster, image OCID) for clusters on A1 instances
    talos_configs: tuple[tuple[str, str], ...] = ()  # (instance, sha256 of its machine config)
    ssh_public_key: str = ""  # the instances' authorized key, read from the file the spec names
    host_image: str | None = None  # the Proxmox VE hosts' image OCID (step cloud/host-image)


async def _apply(ctx: StepContext, inputs: CloudInputs) -> Mapping[str, Any]:
    ctx.wait("OpenTofu plan, free-tier guard and apply")
    loop = asyncio.get_running_loop()

    def on_retry(attempt: Any) -> None:  # from the tofu thread: events belong to the loop
        moves = ", ".join(f"{name} {old} -> {new}" for name, (old, new) in attempt.moves.items()) or "retrying in place"
        found = [m.group(0) for m in re.finditer(r"(\d{3}-\w+, )?Out of host capacity\.?( \([^)$]*\))?", attempt.message)]
        cause = found[-1].strip() if found else attempt.message.strip().splitlines()[0]  # the last: OCI's own words
        dropped = "".join(f"; {ad} dropped for this run: {why}" for ad, why in attempt.dropped.items())
        for ad, why in attempt.dropped.items():  # shown even by the terse views, not only inside a retry's cause
            loop.call_soon_threadsafe(functools.partial(ctx.log, f"{ad} dropped for this run: {why}", level="notice"))
        loop.call_soon_threadsafe(ctx.retry, attempt.attempt, f"{cause}{dropped}; {moves}", attempt.delay_seconds)

    return await asyncio.to_thread(_apply_sync, ctx, inputs, on_retry)


def steps(spec: Platform) -> list[Step]:
    if spec.oci is None:
        return []
    from tierzero.phases.cloud_image import image_steps
    from tierzero.phases.host_image import host_image_steps

    images = host_image_steps(spec) + image_steps(spec)
    return images + [Step("cloud/oci", "cloud", "OCI network, instances and budget (OpenTofu, guarded)", _apply,
                          inputs=_cloud_inputs, needs=tuple(s.id for s in images),
                          destroy=_destroy, real_only=True)]
