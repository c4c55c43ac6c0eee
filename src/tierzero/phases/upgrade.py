"""The rolling part of the platform phase: a running cluster taken to the spec's Talos and
Kubernetes versions (and changed machine configs), one node at a time.

Steps per cluster, after its health step, chained so that only one node is ever touched:
- `platform/<c>/versions`: what each node runs (Talos Version, the kubelet's version from its
  Node) checked against the spec's versions (`tierzero.render.upgrade_path`) before any node is
  touched; a refused path stops here, naming the node and the way forward.
- `platform/<c>/upgrade/<node>`, control planes first, then workers: a node not at the spec's
  Talos gets the Talos API's Upgrade with the Image Factory installer for the cluster's schematic
  (factory.talos.dev/<platform>-installer/<schematic>:<version>), then is waited for: back at the
  new version, its services healthy, etcd back at full membership, its Node Ready. A node already
  at the target is left alone (so a resumed roll never upgrades a node twice). Before each node:
  every etcd member present and every Node Ready (Talos itself refuses a control-plane upgrade that
  would cost etcd its quorum).
- `platform/<c>/config/<node>`, in the same order, after every node runs the new Talos: a node
  whose machine config changed gets it over the Talos API (mode auto), then the same waits, and its
  kubelet at the spec's Kubernetes. This is how the Kubernetes version moves: the rendered config
  carries the control-plane images and the kubelet image. talosctl upgrade-k8s instead patches
  each control-plane component on all control planes in turn, then every kubelet, then syncs the
  bootstrap manifests; here a control plane takes its new components and its kubelet at once, and
  manifests (kube-proxy is off with Cilium; CoreDNS) are not synced. A failed node stops the roll:
  its step fails with the node's state, the later ones do not run, and a re-run resumes there.
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Mapping, Protocol

from tierzero.adapters.protocols import KubernetesNodes, TalosApi
from tierzero.adapters.retry import RetryExhausted, Transient, retry_async
from tierzero.adapters.ssh import retry_policy
from tierzero.adapters.talos_errors import TalosUnavailable
from tierzero.engine.step import Step, StepContext
from tierzero.errors import OperationError
from tierzero.render import upgrade_path

if TYPE_CHECKING:
    from tierzero.spec.clusters import Cluster, Node


class RollHooks(Protocol):
    """What the roll calls outside this module (`tierzero.phases.platform.PlatformHooks`)."""

    @property
    def talos(self) -> Callable[[StepContext, "Cluster", str], TalosApi]: ...

    @property
    def kube(self) -> Callable[[StepContext, "Cluster"], KubernetesNodes]: ...

    def rendered_config(self, ctx: StepContext, cluster: "Cluster", node: str) -> bytes: ...


def _p(cluster: str, rest: str) -> str:
    return f"platform/{cluster}/{rest}"


def _ip(node: "Node") -> str:
    return str(node.ip.address)


def roll_order(cluster: "Cluster") -> list[tuple[str, "Node"]]:
    """(role, node) in roll order: control planes, then workers (`upgrade_path.order`)."""
    return [(role, node) for role, node in cluster.nodes() if role == "controlplane"] + \
        [(role, node) for role, node in cluster.nodes() if role != "controlplane"]


def installer(ctx: StepContext, cluster: "Cluster") -> str:
    """The Image Factory installer for the cluster's schematic and the spec's Talos version: the
    ID the factory gave (the schematic step), else the one computed offline."""
    from tierzero.render.talos_spec import image_urls

    registered = ctx.outputs.get(_p(cluster.name, "schematic"))
    return image_urls(cluster, schematic_id=str(registered["id"]) if registered else None)["installer"]


async def _wait(ctx: StepContext, check: Callable[[], Awaitable[Any]], what: str, hint: str) -> Any:
    async def attempt() -> Any:
        try:
            return await check()
        except TalosUnavailable as err:
            raise Transient(err.message) from None

    try:
        return await retry_async(attempt, policy=retry_policy(ctx.connections, "wait"), on_retry=ctx.retry, what=what)
    except RetryExhausted as exc:
        raise OperationError(exc.message, hint=hint) from exc


async def _with(client: TalosApi, call: Callable[[TalosApi], Awaitable[Any]]) -> Any:
    try:
        return await call(client)
    finally:
        await client.close()


async def _cluster_healthy(ctx: StepContext, h: RollHooks, cluster: "Cluster", touched: str | None = None) -> None:
    """Every etcd member present (asked of a control plane other than `touched` when there is
    one) and every Node Ready; `touched` must be back in etcd too."""
    want = len(cluster.control_planes)
    asked = next((n for n in cluster.control_planes if n.name != touched), cluster.control_planes[0])

    async def etcd() -> None:
        members = await _with(h.talos(ctx, cluster, _ip(asked)), lambda c: c.etcd_members())
        if len(members) < want:
            raise Transient(f"{len(members)}/{want} etcd members")

    async def nodes() -> None:
        kube = h.kube(ctx, cluster)
        listed = await asyncio.to_thread(kube.nodes)
        not_ready = sorted(n.name for n in listed if not n.ready)
        if not_ready or len(listed) < len(cluster.nodes()):
            raise Transient(f"Nodes not Ready: {', '.join(not_ready) or 'some not registered'}")

    ctx.wait(f"etcd of {cluster.name}: {want} members")
    await _wait(ctx, etcd, f"etcd of cluster {cluster.name}", "check the control planes' etcd (`talosctl etcd status`)")
    ctx.wait(f"every Node of {cluster.name} Ready")
    await _wait(ctx, nodes, f"Nodes of cluster {cluster.name}", "check the nodes (`kubectl get nodes`)")


async def _node_back(ctx: StepContext, h: RollHooks, cluster: "Cluster", role: str, node: "Node", kubelet: str | None = None) -> None:
    """The node's services healthy, its Node Ready (with kubelet `kubelet` when given), etcd whole."""
    required = ("apid", "kubelet", "etcd") if role == "controlplane" else ("apid", "kubelet")

    async def services() -> None:
        listed = await _with(h.talos(ctx, cluster, _ip(node)), lambda c: c.services())
        by_id = {s.id: s for s in listed}
        bad = [f"{name}: {by_id[name].state if name in by_id else 'missing'}" for name in required if name not in by_id or not by_id[name].ok]
        if bad:
            raise Transient(f"services not healthy: {', '.join(bad)}")

    async def ready() -> None:
        listed = {n.name: n for n in await asyncio.to_thread(h.kube(ctx, cluster).nodes)}
        found = listed.get(node.name)
        if found is None or not found.ready:
            raise Transient(f"Node {node.name} not Ready")
        if kubelet and found.version.lstrip("v") != kubelet.lstrip("v"):
            raise Transient(f"Node {node.name} runs kubelet {found.version}, not v{kubelet.lstrip('v')}")

    ctx.wait(f"{node.name}: services healthy")
    await _wait(ctx, services, f"services of {node.name}", f"check `talosctl -n {_ip(node)} services`")
    ctx.wait(f"{node.name}: Node Ready")
    await _wait(ctx, ready, f"Node {node.name}", f"check `kubectl describe node {node.name}`")
    await _cluster_healthy(ctx, h, cluster, touched=node.name)


# ---------------------------------------------------------------------------- steps

def _versions(h: RollHooks, cluster_name: str):
    async def run(ctx: StepContext, inputs: Mapping[str, Any]) -> Mapping[str, Any]:
        from tierzero.spec.semantic import supported_versions

        cluster = ctx.spec.cluster(cluster_name)
        tags = await asyncio.gather(*(_with(h.talos(ctx, cluster, _ip(n)), lambda c: c.version(timeout=10.0)) for _, n in cluster.nodes()))
        kubelets = {n.name: n.version for n in await asyncio.to_thread(h.kube(ctx, cluster).nodes)}
        nodes = [upgrade_path.NodeVersions(n.name, role, v.tag, kubelets.get(n.name, "")) for (role, n), v in zip(cluster.nodes(), tags)]
        problems = upgrade_path.check(nodes, cluster.talos_version, cluster.kubernetes_semver, supported_versions())
        if problems:
            raise OperationError(f"cluster {cluster.name} cannot go to Talos {cluster.talos_version} and Kubernetes "
                                 f"{cluster.kubernetes_semver}:\n  " + "\n  ".join(problems),
                                 hint="change talos_version / kubernetes_version in the spec as said, then deploy again")
        talos_due = [n.name for n in nodes if n.talos != cluster.talos_version]
        kube_due = [n.name for n in nodes if n.kubelet and n.kubelet.lstrip("v") != cluster.kubernetes_semver]
        if talos_due or kube_due:
            ctx.log(f"{cluster.name}: Talos {cluster.talos_version} due on {', '.join(talos_due) or 'no node'}; "
                    f"Kubernetes {cluster.kubernetes_semver} due on {', '.join(kube_due) or 'no node'}; "
                    f"order {', '.join(upgrade_path.order(nodes))}", level="notice")
        return {"talos": {n.name: n.talos for n in nodes}, "kubelet": {n.name: n.kubelet for n in nodes},
                "order": upgrade_path.order(nodes), "talos_due": talos_due, "kubernetes_due": kube_due}

    return run


@dataclass(frozen=True)
class UpgradeInputs:
    node: str
    role: str
    talos_version: str
    installer: str  # the Image Factory installer reference the node upgrades with


def _upgrade(h: RollHooks, cluster_name: str):
    async def run(ctx: StepContext, inputs: UpgradeInputs) -> Mapping[str, Any]:
        cluster = ctx.spec.cluster(cluster_name)
        node, target = cluster.node(inputs.node), inputs.talos_version
        ctx.wait(f"Talos API of {node.name}")
        before = (await _wait(ctx, lambda: _with(h.talos(ctx, cluster, _ip(node)), lambda c: c.version(timeout=10.0)),
                              f"Talos API of {node.name}", "the node may be rebooting: check its console")).tag
        upgraded = before != target
        if upgraded:
            problem = upgrade_path.talos_problem(before, target)
            if problem:
                raise OperationError(f"{node.name}: {problem}", hint="change talos_version in the spec")
            await _cluster_healthy(ctx, h, cluster)
            ctx.log(f"upgrading {node.name} from Talos {before} to {target} with {inputs.installer}", level="notice")
            try:
                await _with(h.talos(ctx, cluster, _ip(node)), lambda c: c.upgrade(inputs.installer))
            except OperationError as err:
                raise OperationError(f"{node.name} (Talos {before}) refused the upgrade to {target}: {err.message}",
                                     hint=err.hint or "the roll stopped here; fix the cause and deploy again to resume") from None

            async def at_target() -> str:
                tag = (await _with(h.talos(ctx, cluster, _ip(node)), lambda c: c.version(timeout=10.0))).tag
                if tag != target:
                    raise Transient(f"{node.name} runs {tag}")
                return str(tag)

            ctx.wait(f"{node.name}: back at Talos {target}")
            await _wait(ctx, at_target, f"{node.name} at Talos {target}",
                        "a failed upgrade boots the previous version again (Talos' A-B scheme); read `talosctl -n "
                        f"{_ip(node)} dmesg` and deploy again to retry this node")
        await _node_back(ctx, h, cluster, inputs.role, node)
        return {"node": node.name, "from": before, "to": target, "upgraded": upgraded}

    return run


def _config(h: RollHooks, cluster_name: str, node_name: str):
    async def run(ctx: StepContext, inputs: Mapping[str, Any]) -> Mapping[str, Any]:
        cluster = ctx.spec.cluster(cluster_name)
        role, node = cluster.node_and_role(node_name)
        talos_step = ctx.outputs.get(_p(cluster.name, "talos")) or {}
        if ctx.previous and ctx.previous.get("config"):
            running = ctx.previous["config"]
        elif node_name in (talos_step.get("stale") or ()):
            running = None  # configured before with an older config: the Talos step left it to the roll
        else:
            running = inputs["config"]  # took this config at boot or in maintenance mode
        if running == inputs["config"]:
            return {"node": node_name, "config": inputs["config"], "applied": False}
        await _cluster_healthy(ctx, h, cluster)
        result = await _with(h.talos(ctx, cluster, _ip(node)), lambda c: c.apply_configuration(h.rendered_config(ctx, cluster, node_name), "auto"))
        ctx.log(f"applied the changed machine config to {node_name}: {result.details or result.mode}")
        await _node_back(ctx, h, cluster, role, node, kubelet=inputs["kubernetes"])
        return {"node": node_name, "config": inputs["config"], "applied": True, "mode": result.mode}

    return run


def _upgrade_inputs(cluster: "Cluster", role: str, node: "Node", ctx: StepContext) -> UpgradeInputs:
    return UpgradeInputs(node.name, role, cluster.talos_version, installer(ctx, cluster))


def _config_inputs(digests: Callable[[StepContext], Mapping[str, str]], cluster: "Cluster", node: "Node", ctx: StepContext) -> dict[str, Any]:
    return {"node": node.name, "config": digests(ctx)[node.name], "kubernetes": cluster.kubernetes_semver}


def _versions_inputs(cluster: "Cluster", ctx: StepContext) -> dict[str, Any]:
    return {"talos": cluster.talos_version, "kubernetes": cluster.kubernetes_semver, "installer": installer(ctx, cluster),
            "nodes": [n.name for _, n in roll_order(cluster)]}


def roll_steps(h: RollHooks, cluster: "Cluster", after: str, digests: Callable[[StepContext], Mapping[str, str]]) -> list[Step]:
    """The cluster's roll, after step `after` (its health step). `digests(ctx)`: each node's
    rendered machine config sha256 (what the config steps fingerprint and apply)."""
    c = cluster.name
    out: list[Step] = [Step(_p(c, "versions"), "platform", f"check the versions {c} runs against Talos {cluster.talos_version} "
                            f"and Kubernetes {cluster.kubernetes_semver}", _versions(h, c),
                            inputs=functools.partial(_versions_inputs, cluster), needs=(after,))]
    previous = _p(c, "versions")
    for role, node in roll_order(cluster):
        sid = _p(c, f"upgrade/{node.name}")
        out.append(Step(sid, "platform", f"{node.name}: Talos {cluster.talos_version} (Upgrade through the Talos API, then healthy)",
                        _upgrade(h, c), inputs=functools.partial(_upgrade_inputs, cluster, role, node), needs=(previous,), real_only=True))
        previous = sid
    for _role, node in roll_order(cluster):
        sid = _p(c, f"config/{node.name}")
        out.append(Step(sid, "platform", f"{node.name}: its machine config (Kubernetes {cluster.kubernetes_semver}), then healthy",
                        _config(h, c, node.name), inputs=functools.partial(_config_inputs, digests, cluster, node),
                        needs=(previous, _p(c, "talos")), real_only=True))
        previous = sid
    return out


__all__ = ["RollHooks", "UpgradeInputs", "installer", "roll_order", "roll_steps"]
