"""The Talos stand-in in the sandbox (`STANDIN`, "talos"): one Talos API node per spec node
(`tierzero.sandbox.talos.server`) and the world document "talos" that keeps what the nodes hold
across runs.

Per node the document holds its hostname, the machine config it was given (the raw bytes, so
the summary and the TLS identity from its OS CA are re-derived exactly) and whether it is an
etcd member; per cluster, whether it was bootstrapped, the OS CA key a worker's trustd would
fetch and its member nodes. A node without a config is in maintenance mode. Ports, call logs
and fault injection are not kept; neither is a halted node's power state (it comes back up).
"""

from __future__ import annotations

import base64
from typing import Any

import yaml

from tierzero.sandbox import kubernetes
from tierzero.sandbox.context import Handle, SandboxContext, StandIn, Stop
from tierzero.sandbox.talos.server import (
    KubeconfigProvider,
    TalosNodeServer,
    TalosSandboxCluster,
    TalosSandboxRegistry,
    TalosSandboxThread,
    _default_kubeconfig,
)
from tierzero.sandbox.talos.tls import parse_machine_config

DOCUMENT = "talos"
REGISTRY: Handle[TalosSandboxRegistry] = Handle("talos-registry")
NODES: Handle[dict[str, TalosNodeServer]] = Handle("talos-nodes")  # by address (or name, for a dhcp node)


def _b64(data: bytes | None) -> str | None:
    return base64.b64encode(data).decode() if data else None


def snapshot(registry: TalosSandboxRegistry, nodes: dict[str, TalosNodeServer]) -> dict[str, Any]:
    return {
        "nodes": {
            address: {"hostname": node.hostname, "config": _b64(node.config.raw if node.config else None), "in_etcd": node.in_etcd}
            for address, node in nodes.items()
        },
        "clusters": {
            name: {"bootstrapped": c.bootstrapped, "os_ca_key": _b64(c.os_ca_key), "nodes": sorted(c.nodes)}
            for name, c in registry.clusters.items()
        },
    }


def restore(registry: TalosSandboxRegistry, nodes: dict[str, TalosNodeServer], doc: dict[str, Any]) -> None:
    """Put a snapshot back into nodes that are not started yet. Saved nodes missing from `nodes`
    (no longer in the spec) are dropped; nodes the snapshot lacks stay in maintenance mode."""
    for address, saved in (doc.get("nodes") or {}).items():
        node = nodes.get(address)
        if node is None or not saved.get("config"):
            continue
        node.config = parse_machine_config(base64.b64decode(saved["config"]))
        node.hostname = saved.get("hostname") or node.hostname
        node.in_etcd = bool(saved.get("in_etcd"))
    for name, saved in (doc.get("clusters") or {}).items():
        members = {a: nodes[a] for a in saved.get("nodes", []) if a in nodes and nodes[a].config is not None}
        key = saved.get("os_ca_key")
        registry.clusters[name] = TalosSandboxCluster(
            name, bootstrapped=bool(saved.get("bootstrapped")), os_ca_key=base64.b64decode(key) if key else None, nodes=members
        )


def _kubeconfig_provider(box: SandboxContext, cluster: str) -> KubeconfigProvider | None:
    kube = (box.get(kubernetes.SERVERS) or {}).get(cluster)
    if kube is None:
        return None

    def provider(name: str, address: str, url: str = kube.url) -> bytes:
        doc = yaml.safe_load(_default_kubeconfig(name, address))
        doc["clusters"][0]["cluster"]["server"] = url
        doc["users"][0]["user"] = {"token": "sandbox"}
        return yaml.safe_dump(doc).encode()

    return provider


def _start(box: SandboxContext) -> Stop:
    """One stand-in node per spec node, registered as ("talos", ip) and ("talos", name); each
    cluster's kubeconfig points at that cluster's Kubernetes stand-in when there is one. With
    `box.world`, the nodes come back as the saved world left them."""
    registry = TalosSandboxRegistry()
    nodes: dict[str, TalosNodeServer] = {}
    names: dict[str, str] = {}
    box.put(REGISTRY, registry)
    box.put(NODES, nodes)
    reboot = box.options.talos_reboot_seconds
    for cluster in box.spec.clusters:
        provider = _kubeconfig_provider(box, cluster.name)
        for _role, spec_node in cluster.nodes():
            address = str(spec_node.ip.address or spec_node.name)
            nodes[address] = TalosNodeServer(address, registry=registry, hostname=spec_node.name, kubeconfig=provider, reboot_seconds=reboot)
            names[address] = spec_node.name
    if box.world is not None:
        document = box.world.file(DOCUMENT)
        restore(registry, nodes, document.load() or {})
        registry.persist = lambda: document.save(snapshot(registry, nodes))
        registry.changed()  # the spec's new nodes (and dropped old ones) are part of the world now
    runner = TalosSandboxThread()
    try:
        for address, node in nodes.items():
            runner.start(node)
            for name in dict.fromkeys((address, names[address])):
                box.connections.add("talos", name, node.endpoint())
    except BaseException:
        runner.stop()
        raise
    return runner.stop


STANDIN = StandIn("talos", _start)
