"""Phase "platform": the Talos clusters as Proxmox VMs.

Per cluster: the schematic registered with the Image Factory (`POST /schematics`, its answer's ID
used from then on); the factory's nocloud disk image as qcow2 on each host's image storage
(download-url with content `import`, which takes .qcow2/.raw/.vmdk/.ova files as they come and
decompresses nothing; with the factory's sha256 when it publishes one; skipped when present); per
node a VM (looked up by VMID and name first, never duplicated) importing that image, its NIC at the
node's MAC, its machine config as NoCloud user-data (a cloud-init snippet); then the Talos API on
every node, etcd bootstrapped once on the first control plane, the cluster healthy, and
kubeconfig/talosconfig written to `.tierzero/clusters/<cluster>/` (0600); then the roll
(`tierzero.phases.upgrade`): the spec's Talos and Kubernetes versions and changed machine configs
taken to running nodes one at a time.

Outside collaborators come through `PlatformHooks` (defaults: `tierzero.render.talos_spec`,
`tierzero.adapters.talos`, `tierzero.adapters.kubernetes`); a test passes its own to `steps()`.
The Talos and Kubernetes hooks return the protocols of `tierzero.adapters.protocols`.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping

from tierzero.adapters.connections import Endpoint, UnknownEndpoint
from tierzero.adapters.protocols import ImageFactoryApi, KubernetesNodes, TalosApi, TalosMaintenanceApi
from tierzero.adapters.proxmox import proxmox_client
from tierzero.adapters.retry import RetryExhausted, Transient, retry_async
from tierzero.adapters.talos_errors import TalosUnavailable
from tierzero.adapters.ssh import retry_policy
from tierzero.engine.step import Step, StepContext
from tierzero.phases.talos_maintenance import apply_in_maintenance
from tierzero.phases.upgrade import roll_steps
from tierzero.errors import OperationError
from tierzero.phases.platform_vm import VmInputs, ensure_vm, image_name, image_volid, remove_vm, vm_inputs
from tierzero.render.vmids import assign_vmids
from tierzero.workspace.layout import write_private

if TYPE_CHECKING:
    from tierzero.adapters.kubernetes import Kube
    from tierzero.render.talos.schematic import Arch
    from tierzero.spec.models import Cluster, Node, Platform


def _default_factory(ctx: StepContext, spec_url: str) -> ImageFactoryApi:
    from tierzero.adapters.image_factory import ImageFactory, factory_url

    return ImageFactory(factory_url(ctx.connections, spec_url), policy=ctx.connections.retry.default, on_retry=ctx.retry)


def _default_machine_config(ctx: StepContext, cluster: Cluster, node: str) -> bytes:
    from tierzero.phases.setup import spec_files
    from tierzero.render.talos_spec import machine_config

    return machine_config(ctx.spec, cluster, node, ctx.secrets, spec_files(ctx), api_sans(ctx, cluster)).encode()


def api_sans(ctx: StepContext, cluster: Cluster) -> tuple[str, ...]:
    """Names the cluster's certificates need beyond the spec's: the network load balancer's address the
    cloud layer published for a cluster on A1 instances (tierzero.render.talos_spec.load_balancer_sans)."""
    from tierzero.render.talos_spec import load_balancer_sans

    return load_balancer_sans(cluster, (ctx.outputs.get("cloud/oci") or {}).get("network_load_balancers"))


def _default_talosconfig(ctx: StepContext, cluster: Cluster) -> bytes:
    from tierzero.render.talos_spec import talosconfig

    return talosconfig(cluster, ctx.secrets).encode()


def talos_client(ctx: StepContext, cluster: Cluster, address: str) -> TalosApi:
    """The Talos API of the node at `address`, with the cluster's talosconfig."""
    from tierzero.adapters.talos import TalosClient

    return TalosClient.authenticated(address, _default_talosconfig(ctx, cluster), connections=ctx.connections)


def kube_client(ctx: StepContext, cluster: Cluster) -> Kube:
    """The cluster's Kubernetes API: its ("kubernetes", CLUSTER) endpoint, else the spec's
    endpoint with the kubeconfig the health step writes."""
    from tierzero.adapters.kubernetes import Kube

    try:
        ctx.connections.endpoint("kubernetes", cluster.name)
    except UnknownEndpoint:
        host, port = cluster.endpoint.removeprefix("https://").rsplit(":", 1)
        kubeconfig = cluster_dir(ctx, cluster) / "kubeconfig"
        ctx.connections.add("kubernetes", cluster.name, Endpoint(host, int(port), extra={"kubeconfig": str(kubeconfig)}))
    return Kube.connect(ctx.connections, cluster.name)


def _default_kube(ctx: StepContext, cluster: Cluster) -> KubernetesNodes:
    return kube_client(ctx, cluster)


def _default_maintenance(ctx: StepContext, address: str) -> TalosMaintenanceApi:
    from tierzero.adapters.talos import TalosClient

    return TalosClient.maintenance(address, connections=ctx.connections, call_timeout=10.0)


_default_talos = talos_client


@dataclass
class PlatformHooks:
    """What the platform steps call outside this module; `steps(spec, hooks)` takes a test's own."""

    machine_config: Callable[[StepContext, Cluster, str], bytes] = _default_machine_config
    talosconfig: Callable[[StepContext, Cluster], bytes] = _default_talosconfig
    talos: Callable[[StepContext, Cluster, str], TalosApi] = _default_talos  # a node's API, by address
    kube: Callable[[StepContext, Cluster], KubernetesNodes] = _default_kube
    image_factory: Callable[[StepContext, str], ImageFactoryApi] = _default_factory  # (ctx, the spec's factory URL)
    talos_maintenance: Callable[[StepContext, str], TalosMaintenanceApi] | None = _default_maintenance
    # Rendered machine configs, by (spec, cluster, node): a pure function of the spec and the
    # (never regenerated) secrets bundle, read by fingerprints and runs alike.
    _configs: dict[tuple[int, str, str, tuple[str, ...]], tuple[Platform, bytes]] = field(default_factory=dict, init=False, repr=False, compare=False)

    def rendered_config(self, ctx: StepContext, cluster: Cluster, node: str) -> bytes:
        key = (id(ctx.spec), cluster.name, node, api_sans(ctx, cluster))
        if key not in self._configs:  # the spec is kept with it, so its id is not reused meanwhile
            self._configs[key] = (ctx.spec, self.machine_config(ctx, cluster, node))
        return self._configs[key][1]


def cluster_dir(ctx: StepContext, cluster: Cluster) -> Any:
    return ctx.workspace.cluster_dir(cluster.name)


def node_ip(node: Node) -> str:
    if node.ip.address is None:
        raise OperationError(f"node {node.name} uses dhcp; tierzero needs a static `ip` to reach its Talos API", hint="give the node an ip like 10.10.0.21/24")
    return str(node.ip.address)


def _cluster(ctx: StepContext, name: str) -> Cluster:
    return ctx.spec.cluster(name)


def _p(cluster: str, rest: str) -> str:
    return f"platform/{cluster}/{rest}"


# ---------------------------------------------------------------------------- image

@dataclass(frozen=True)
class SchematicInputs:
    """A cluster's schematic: what the factory registers (its canonical YAML), at which factory."""

    factory: str  # the spec's clusters[].image_factory
    schematic: str  # canonical YAML, as `tierzero.render.talos.schematic.Schematic` writes it
    offline_id: str  # its sha256, as computed here
    extensions: tuple[str, ...]


def _schematic(h: PlatformHooks):
    async def run(ctx: StepContext, inputs: SchematicInputs) -> Mapping[str, Any]:
        factory = h.image_factory(ctx, inputs.factory)
        try:
            sid = await factory.register(inputs.schematic)
        finally:
            factory.close()
        if sid != inputs.offline_id:
            ctx.log(f"the Image Factory gave schematic {sid[:12]}… (computed offline: {inputs.offline_id[:12]}…); using the factory's", level="notice")
        return {"id": sid, "factory": inputs.factory, "extensions": list(inputs.extensions)}

    return run


@dataclass(frozen=True)
class ImageInputs:
    factory: str  # the spec's clusters[].image_factory
    schematic_id: str  # the ID the factory gave (the schematic step's output)
    storage: str
    talos_version: str
    arch: Arch


def _image(h: PlatformHooks, pve_node: str):
    async def run(ctx: StepContext, inputs: ImageInputs) -> Mapping[str, Any]:
        from tierzero.render.talos.schematic import disk_image_url

        storage = inputs.storage
        filename = image_name(inputs.talos_version, inputs.arch, inputs.schematic_id)
        api = proxmox_client(ctx, pve_node)
        present = {c.get("volid") for c in await api.storage_content(pve_node, storage, "import")}
        volid = image_volid(storage, filename)
        if volid in present:
            return {"volid": volid, "downloaded": False}
        factory = h.image_factory(ctx, inputs.factory)
        try:  # the factory as this target reaches it: the URL the hosts download from
            url = disk_image_url(inputs.schematic_id, inputs.talos_version, inputs.arch, platform="nocloud", fmt="qcow2", base=factory.base_url)
            checksum = await factory.checksum(url)
        finally:
            factory.close()
        if checksum is None:
            ctx.log(f"{inputs.factory} publishes no checksum for {filename} (the community factory answers 402): "
                    "Proxmox downloads it without one")
        ctx.wait(f"the download of {filename} to {storage} on {pve_node}")
        await api.download_url(pve_node, storage, url=url, filename=filename, content="import", checksum=checksum)
        return {"volid": volid, "downloaded": True, "checksum": checksum is not None}

    return run


# ---------------------------------------------------------------------------- VMs

def _vm(h: PlatformHooks, cluster_name: str):
    async def run(ctx: StepContext, inputs: VmInputs) -> Mapping[str, Any]:
        config = h.rendered_config(ctx, _cluster(ctx, cluster_name), inputs.node.name)
        if hashlib.sha256(config).hexdigest() != inputs.config_sha256:  # rendered from the same spec and secrets
            raise OperationError(f"the machine config of {inputs.node.name} changed while the step ran", hint="run the deploy again")
        return await ensure_vm(ctx, inputs, config)

    return run


def _vm_destroy(cluster_name: str, node_name: str, vmid: int):
    async def run(ctx: StepContext) -> Mapping[str, Any]:
        return await remove_vm(ctx, _cluster(ctx, cluster_name), node_name, vmid)

    return run


# ---------------------------------------------------------------------------- Talos and Kubernetes

async def _probe(client: TalosApi) -> bool:
    """Whether the node answers with the cluster's credentials: False while it does not answer
    yet (`TalosUnavailable`: booting, rebooting, still in maintenance mode with its throwaway
    certificate). Any other error raises at once: it stays so however long one waits."""
    try:
        await client.version(timeout=5.0)
        return True
    except TalosUnavailable:
        return False
    finally:
        await client.close()


async def configure_node(ctx: StepContext, h: PlatformHooks, cluster: Cluster, node: Node, policy: Any) -> str:
    """Wait until the node's Talos API answers with the cluster's credentials. A node still in
    maintenance mode (it booted without reading its NoCloud user-data) gets its machine config
    over the API instead. Returns "configured" or "applied"."""
    ip = node_ip(node)
    applied = False

    async def attempt() -> str:
        nonlocal applied
        if await _probe(h.talos(ctx, cluster, ip)):
            return "applied" if applied else "configured"
        if not applied and h.talos_maintenance is not None:
            applied = await apply_in_maintenance(ctx, h.talos_maintenance(ctx, ip), node.name, ip, h.rendered_config(ctx, cluster, node.name))
        raise Transient(f"Talos API of {node.name} ({ip}) not answering yet")

    return await _waiting(attempt, policy, ctx, f"Talos API of {node.name}", "check the VM console in Proxmox: did Talos boot and take its address?")


def config_digests(ctx: StepContext, h: PlatformHooks, cluster: Cluster) -> dict[str, str]:
    """sha256 of each node's rendered machine config: what the Talos step must have applied.
    With the default renderer they come from the `setup/render` step when it rendered the same
    spec with the same bundles and render code (`setup.rendered_configs`), so an unchanged deploy
    neither renders nor decrypts anything to fingerprint these steps; otherwise each config is rendered."""
    from tierzero.phases.setup import rendered_configs

    # `setup/render` renders from the spec alone: not what a cluster behind a load balancer runs (api_sans)
    rendered = rendered_configs(ctx) if h.machine_config is _default_machine_config and not api_sans(ctx, cluster) else None
    names = [node.name for _, node in cluster.nodes()]
    if isinstance(rendered, Mapping) and all(f"{cluster.name}/{n}" in rendered for n in names):
        return {n: str(rendered[f"{cluster.name}/{n}"]) for n in names}
    return {n: hashlib.sha256(h.rendered_config(ctx, cluster, n)).hexdigest() for n in names}


def _talos_ready(h: PlatformHooks, cluster_name: str):
    async def run(ctx: StepContext, inputs: Any) -> Mapping[str, Any]:
        cluster = _cluster(ctx, cluster_name)
        policy = retry_policy(ctx.connections, "wait")
        ctx.wait(f"Talos API on every node of {cluster.name}")
        results = await asyncio.gather(*(configure_node(ctx, h, cluster, node, policy) for _, node in cluster.nodes()))
        names = [n.name for _, n in cluster.nodes()]
        digests = config_digests(ctx, h, cluster)
        # Nodes that took their config from NoCloud user-data or over the maintenance API run
        # the current one; others run what the last run applied, which may be older.
        # Those are applied one node at a time by the roll's config steps (`tierzero.phases.upgrade`).
        before = dict((ctx.previous or {}).get("configs", {}))
        stale = [node.name for (_, node), how in zip(cluster.nodes(), results)
                 if how == "configured" and node.name in before and before[node.name] != digests[node.name]]
        return {"nodes": names, "applied": sorted(n for n, r in zip(names, results) if r == "applied"),
                "stale": stale, "configs": digests}

    return run


def _bootstrap(h: PlatformHooks, cluster_name: str):
    async def run(ctx: StepContext, inputs: Any) -> Mapping[str, Any]:
        cluster = _cluster(ctx, cluster_name)
        first = cluster.control_planes[0]
        client = h.talos(ctx, cluster, node_ip(first))
        try:
            members = await client.etcd_members()
            if members:  # etcd runs already: bootstrapping again would split the cluster
                return {"node": first.name, "bootstrapped": False}
        except OperationError:
            members = []  # etcd not up yet: it answers once bootstrapped
        try:
            done = await client.bootstrap()
        finally:
            await client.close()
        return {"node": first.name, "bootstrapped": bool(done)}

    return run


def _health(h: PlatformHooks, cluster_name: str):
    async def run(ctx: StepContext, inputs: Any) -> Mapping[str, Any]:
        cluster = _cluster(ctx, cluster_name)
        policy = retry_policy(ctx.connections, "wait")
        want = len(cluster.control_planes)
        client = h.talos(ctx, cluster, node_ip(cluster.control_planes[0]))
        out_dir = cluster_dir(ctx, cluster)
        try:
            async def etcd() -> list[Any]:
                members = await client.etcd_members()
                if len(members) < want:
                    raise Transient(f"{len(members)}/{want} etcd members")
                return members

            ctx.wait(f"etcd of {cluster.name}: {want} members")
            members = await _waiting(etcd, policy, ctx, f"etcd of cluster {cluster.name}", "check the control planes' Talos logs (`talosctl logs etcd`)")
            kubeconfig = await client.kubeconfig()
        finally:
            await client.close()
        write_private(out_dir / "kubeconfig", kubeconfig)
        write_private(out_dir / "talosconfig", h.talosconfig(ctx, cluster))
        kube = h.kube(ctx, cluster)

        async def nodes_ready() -> list[Any]:
            await asyncio.to_thread(kube.version)
            nodes = await asyncio.to_thread(kube.nodes)
            ready = [n for n in nodes if n.ready]
            if cluster.cni != "none" and len(ready) < len(cluster.nodes()):
                raise Transient(f"{len(ready)}/{len(cluster.nodes())} nodes Ready")
            return nodes

        ctx.wait(f"Kubernetes API and nodes of {cluster.name}")
        nodes = await _waiting(nodes_ready, policy, ctx, f"Kubernetes of cluster {cluster.name}", "check Cilium and the kubelets (`kubectl get pods -n kube-system`)")
        return {
            "etcd_members": sorted(getattr(m, "hostname", str(m)) for m in members),
            "nodes_ready": sorted(n.name for n in nodes if n.ready),
            "kubeconfig": str(out_dir / "kubeconfig"),
            "talosconfig": str(out_dir / "talosconfig"),
        }

    return run


async def _waiting(check: Callable[[], Any], policy: Any, ctx: StepContext, what: str, hint: str) -> Any:
    try:
        return await retry_async(check, policy=policy, on_retry=ctx.retry, what=what)
    except RetryExhausted as exc:
        raise OperationError(f"{what} not healthy: {exc.message}", hint=hint) from exc


# ---------------------------------------------------------------------------- steps

def _schematic_inputs(cluster: Cluster, ctx: StepContext) -> SchematicInputs:
    from tierzero.render.talos_spec import schematic

    wanted = schematic(cluster)
    return SchematicInputs(cluster.image_factory, wanted.canonical_yaml(), wanted.id, tuple(wanted.official_extensions))


def _image_inputs(cluster: Cluster, ctx: StepContext) -> ImageInputs:
    sid = str(ctx.output(_p(cluster.name, "schematic"))["id"])
    return ImageInputs(cluster.image_factory, sid, ctx.spec.proxmox.image_storage, cluster.talos_version, cluster.arch)


def _vm_step_inputs(h: PlatformHooks, cluster: Cluster, node: Node, vmid: int, ctx: StepContext) -> VmInputs:
    volid = str(ctx.output(_p(cluster.name, f"image/{node.node}"))["volid"])
    return vm_inputs(ctx, cluster, node, vmid, volid, config_digests(ctx, h, cluster)[node.name])


def _talos_inputs(h: PlatformHooks, cluster: Cluster, ctx: StepContext) -> dict[str, Any]:
    return {"configs": config_digests(ctx, h, cluster)}


def _bootstrap_inputs(cluster: Cluster, ctx: StepContext) -> dict[str, Any]:
    return {"first": cluster.control_planes[0].name}


def _health_inputs(cluster: Cluster, ctx: StepContext) -> dict[str, Any]:
    return {"nodes": [n.name for _, n in cluster.nodes()]}


def steps(spec: Platform, hooks: PlatformHooks | None = None) -> list[Step]:
    h = hooks or PlatformHooks()
    out: list[Step] = []
    vmids = assign_vmids(spec)
    for cluster in spec.clusters:
        c = cluster.name
        if cluster.on_instances:
            # Talos on A1 instances: the cloud phase imported the image and launched the instances with their
            # machine configs as user_data; from here it is the Talos API, as for VMs.
            out += _talos_steps(h, cluster, needs=())
            continue
        hosts = sorted({n.node for _, n in cluster.nodes() if n.node is not None})
        out.append(Step(_p(c, "schematic"), "platform", f"register the schematic of {c} with the Image Factory", _schematic(h),
                        inputs=functools.partial(_schematic_inputs, cluster)))
        for host in hosts:
            out.append(Step(_p(c, f"image/{host}"), "platform", f"Talos {cluster.talos_version} nocloud image for {c} on {host}", _image(h, host),
                            inputs=functools.partial(_image_inputs, cluster), needs=(_p(c, "schematic"),)))
        vm_ids = []
        for _, node in cluster.nodes():
            sid = _p(c, f"vm/{node.name}")
            vm_ids.append(sid)
            out.append(Step(
                sid, "platform", f"VM {node.name} ({vmids[(c, node.name)]}) on {node.node}", _vm(h, c),
                inputs=functools.partial(_vm_step_inputs, h, cluster, node, vmids[(c, node.name)]),
                needs=(_p(c, f"image/{node.node}"),), real_only=True, destroy=_vm_destroy(c, node.name, vmids[(c, node.name)]),
            ))
        out += _talos_steps(h, cluster, needs=tuple(vm_ids))
    return out


def _talos_steps(h: PlatformHooks, cluster: Cluster, needs: tuple[str, ...]) -> list[Step]:
    c = cluster.name
    return [
        Step(_p(c, "talos"), "platform", f"wait for the Talos API on every node of {c}",
             _talos_ready(h, c), inputs=functools.partial(_talos_inputs, h, cluster), needs=needs),
        Step(_p(c, "bootstrap"), "platform", f"bootstrap etcd on {cluster.control_planes[0].name}", _bootstrap(h, c),
             inputs=functools.partial(_bootstrap_inputs, cluster), needs=(_p(c, "talos"),), real_only=True),
        Step(_p(c, "health"), "platform", f"wait for {c} to be healthy; write kubeconfig and talosconfig", _health(h, c),
             inputs=functools.partial(_health_inputs, cluster), needs=(_p(c, "bootstrap"),)),
        *roll_steps(h, cluster, after=_p(c, "health"), digests=lambda ctx: config_digests(ctx, h, cluster)),
    ]


__all__ = ["PlatformHooks", "cluster_dir", "configure_node", "kube_client", "node_ip", "steps", "talos_client"]
