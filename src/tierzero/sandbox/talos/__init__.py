"""The Talos stand-in in the sandbox (`STANDIN`, "talos"): Talos machines that exist because a
Proxmox VM booted a Talos image (`TalosMachines.boot`, called by the sandbox's `guests` stand-in),
the network that reaches them by address (`tierzero.sandbox.talos.network`), and the world
document "talos" that keeps what the machines hold across runs.

Nothing answers at a node's address until its VM runs: a machine boots the Talos version,
platform and extensions of the image on its boot disk, reads its NoCloud user-data (the machine
config, or nothing for a `#cloud-config` file) and network-config when its VM has a cloud-init
drive and its platform is nocloud, names its links as its kernel arguments make Linux name them,
and takes the addresses its configuration puts on links that exist. Source of the NoCloud rules:
siderolabs/talos v1.12.11 internal/app/machined/pkg/runtime/v1alpha1/platform/nocloud/nocloud.go
Configuration (a `#cloud-config` first line is no machine config) and metadata.go; a stored config
wins over the platform's on later boots (the config lives on the STATE partition).

Per machine the document holds its VM, disk, image, NIC MACs, NoCloud network-config, hostname,
the machine config it runs (raw bytes), whether it is an etcd member and whether it runs; per
cluster, whether it was bootstrapped, the OS CA key a worker's trustd would fetch, its member
machines and its etcd keys (`tierzero.sandbox.talos.etcd`; an upload for recovery is not kept). Ports, call logs and fault injection are not kept.
"""

from __future__ import annotations

import asyncio
import base64
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

import yaml

from tierzero.sandbox import kubernetes
from tierzero.sandbox.context import Handle, SandboxContext, StandIn, Stop
from tierzero.sandbox.talos.network import TalosNetwork
from tierzero.sandbox.talos.server import (
    KubeconfigProvider,
    TalosNodeServer,
    TalosSandboxCluster,
    TalosSandboxRegistry,
    TalosSandboxThread,
    _default_kubeconfig,
)
from tierzero.sandbox.talos.tls import ConfigError, parse_machine_config

DOCUMENT = "talos"
VERSION = 2
REGISTRY: Handle[TalosSandboxRegistry] = Handle("talos-registry")
MACHINES: Handle["TalosMachines"] = Handle("talos-machines")


def _b64(data: bytes | None) -> str | None:
    return base64.b64encode(data).decode() if data else None


def user_data_config(user_data: bytes | None) -> bytes | None:
    """The machine config in NoCloud user-data: none for no file or a `#cloud-config` one."""
    if not user_data or user_data.lstrip().startswith(b"#cloud-config"):
        return None
    return user_data


@dataclass
class TalosMachines:
    """The running Talos machines, by VM ("<pve node>/<vmid>"). Thread-safe: calls come from
    fakepve's loop (VM start/stop) and from tests; node lifecycles run on the runner's loop."""

    registry: TalosSandboxRegistry
    runner: TalosSandboxThread
    reboot_seconds: float = 0.2
    kubeconfigs: dict[str, KubeconfigProvider] = field(default_factory=dict)  # by cluster name
    machines: dict[str, TalosNodeServer] = field(default_factory=dict)
    disks: dict[str, str] = field(default_factory=dict)  # key -> the boot disk the machine lives on
    persist: Callable[[], None] | None = None
    lock: threading.RLock = field(default_factory=threading.RLock)
    _starting: set[str] = field(default_factory=set)  # restored as running, not listening yet

    def __post_init__(self) -> None:
        self.network = TalosNetwork(self.machines)

    def _kubeconfig(self, cluster: str, address: str) -> bytes | str:
        provider = self.kubeconfigs.get(cluster) or _default_kubeconfig
        return provider(cluster, address)

    def _on_loop(self, coro: Any) -> Any:
        if threading.current_thread() is self.runner._thread:  # noqa: SLF001
            raise RuntimeError("TalosMachines is driven from outside the Talos loop")
        return asyncio.run_coroutine_threadsafe(coro, self.runner.loop).result(30)

    def saved(self) -> None:
        if self.persist is not None:
            self.persist()

    def new_node(self, key: str, *, image: dict[str, Any], macs: list[str], network_config: list[dict[str, Any]] | None,
                 hostname: str | None) -> TalosNodeServer:
        node = TalosNodeServer(key, registry=self.registry, hostname=hostname, kubeconfig=self._kubeconfig,
                               reboot_seconds=self.reboot_seconds, image=image, macs=macs, network_config=network_config, key=key)
        held = sorted(node.held_addresses())
        if held:
            node.address = held[0]
        return node

    def boot(self, key: str, *, disk: str, image: dict[str, Any], macs: list[str], user_data: bytes | None,
             network_config: list[dict[str, Any]] | None, hostname: str | None = None) -> TalosNodeServer:
        """Power on the machine of VM `key` booting from `disk`. A machine that ran from this disk
        before keeps its config; a new disk is a new machine."""
        with self.lock:
            node = self.machines.get(key)
            if node is not None and self.disks.get(key) != disk:
                self.remove(key)
                node = None
            if node is None:
                node = self.new_node(key, image=image, macs=macs, network_config=network_config, hostname=hostname)
                config = user_data_config(user_data) if image.get("platform") != "metal" else None
                if config is not None:
                    try:
                        node.configure(parse_machine_config(config))
                    except ConfigError:
                        pass  # Talos logs it and waits in maintenance mode for a config over the API
                self.machines[key], self.disks[key] = node, disk
            else:
                node.network_config, node.macs = network_config, [m.lower() for m in macs]
            if not node.powered:
                self._on_loop(node.power_on() if node in self.runner.nodes else self._start(node))
            self.saved()
            return node

    async def _start(self, node: TalosNodeServer) -> None:
        await node.start()
        self.runner.nodes.append(node)

    def power_off(self, key: str) -> None:
        with self.lock:
            node = self.machines.get(key)
            if node is not None and node.powered:
                self._on_loop(node.power_off())
            self.saved()

    def remove(self, key: str) -> None:
        """The VM (and its disk) is gone: so is the machine and its etcd membership."""
        with self.lock:
            node = self.machines.pop(key, None)
            self.disks.pop(key, None)
            if node is None:
                return
            if node in self.runner.nodes:
                self._on_loop(node.stop())
                self.runner.nodes.remove(node)
            node.wipe()
            self.saved()

    def running(self, key: str) -> bool:
        node = self.machines.get(key)
        return node is not None and node.powered

    # ------------------------------------------------------------ the world document

    def snapshot(self) -> dict[str, Any]:
        return {
            "version": VERSION,
            "machines": {key: {"disk": self.disks.get(key), "address": n.address, "hostname": n.hostname, "image": n.image,
                               "macs": n.macs, "network_config": n.network_config, "config": _b64(n.config.raw if n.config else None),
                               "in_etcd": n.in_etcd, "running": n.powered or key in self._starting}
                         for key, n in sorted(list(self.machines.items()))},
            "clusters": {name: {"bootstrapped": c.bootstrapped, "os_ca_key": _b64(c.os_ca_key), "nodes": sorted(c.nodes),
                                "etcd": {"revision": c.etcd_revision, "keys": dict(sorted(c.etcd.items()))}}
                         for name, c in sorted(list(self.registry.clusters.items()))},
        }

    def restore(self, doc: dict[str, Any]) -> list[str]:
        """Machines as a saved world left them (not started yet); returns those that were running."""
        running = []
        for key, saved in (doc.get("machines") or {}).items():
            node = self.new_node(key, image=saved.get("image") or {}, macs=list(saved.get("macs") or []),
                                 network_config=saved.get("network_config"), hostname=saved.get("hostname"))
            if saved.get("config"):
                node.config = parse_machine_config(base64.b64decode(saved["config"]))
                node.in_etcd = bool(saved.get("in_etcd"))
            node.address = saved.get("address") or node.address
            self.machines[key], self.disks[key] = node, str(saved.get("disk") or "")
            if saved.get("running"):
                running.append(key)
        for name, saved in (doc.get("clusters") or {}).items():
            members = {k: self.machines[k] for k in saved.get("nodes", []) if k in self.machines and self.machines[k].config is not None}
            key = saved.get("os_ca_key")
            self.registry.clusters[name] = TalosSandboxCluster(
                name, bootstrapped=bool(saved.get("bootstrapped")), os_ca_key=base64.b64decode(key) if key else None, nodes=members,
                etcd=dict((saved.get("etcd") or {}).get("keys") or {}), etcd_revision=int((saved.get("etcd") or {}).get("revision") or 0))
        return running


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


def _installers(box: SandboxContext) -> Callable[[str], dict[str, Any]]:
    """Installer references resolved by the sandbox's Image Factory registry, as a node's
    containerd pulls them (any registry host: the sandbox has one factory)."""
    from tierzero.sandbox import factory_registry, image_factory

    def pull(ref: str) -> dict[str, Any]:
        server = box.get(image_factory.SERVER)
        try:
            parsed = factory_registry.InstallerRef.parse(ref)
            if server is None:
                raise LookupError(f"failed to resolve reference {ref!r}: no such host")
            return factory_registry.installer(server.factory, parsed.image, parsed.schematic, parsed.reference)
        except ValueError as err:
            raise LookupError(str(err)) from None
        except factory_registry.RegistryError as err:
            raise LookupError(f'failed to resolve reference "{ref}": unexpected status {err.status}: {err.text}') from None

    return pull


def _mirror_in_kubernetes(box: SandboxContext) -> Callable[[TalosNodeServer, bool], None]:
    """A Talos node's state as its Node object shows it: NotReady while it is down, Ready with its
    kubelet's version and "Talos (<version>)" as osImage once it is up (what kubelet posts:
    kubernetes.io/docs/reference/node/node-status, "Info" and "Conditions")."""

    def mirror(node: TalosNodeServer, up: bool) -> None:
        if node.config is None:
            return
        state = getattr((box.get(kubernetes.SERVERS) or {}).get(node.config.cluster_name), "state", None)
        if state is None:  # no Kubernetes stand-in for this cluster (a test that gives only its URL)
            return
        current = state.read("v1", "Node", node.hostname)
        if current is None:
            return
        status = dict(current.get("status") or {})
        status["conditions"] = [{"type": "Ready", "status": "True" if up else "False", "reason": "KubeletReady" if up else "NodeStatusUnknown",
                                 "message": "kubelet is posting ready status" if up else "Kubelet stopped posting node status."}]
        info = dict(status.get("nodeInfo") or {})
        if up:
            info["osImage"] = f"Talos ({node.version_tag})"
            if node.config.kubelet_image and ":" in node.config.kubelet_image:
                info["kubeletVersion"] = node.config.kubelet_image.rsplit(":", 1)[1]
        status["nodeInfo"] = info
        state.write_status("v1", "Node", node.hostname, None, status)
        if up and node.config.control_plane and node.config.talos_api_access and state.read(*_TALOS_SA_CRD_KEY) is None:
            state.apply(talos_service_account_crd(), manager="talos")

    return mirror


_TALOS_SA_CRD_KEY = ("apiextensions.k8s.io/v1", "CustomResourceDefinition", "serviceaccounts.talos.dev")


def talos_service_account_crd() -> dict[str, Any]:
    """What a control plane with Talos API access enabled applies to its cluster: the CRD of
    `talos.dev/v1alpha1` ServiceAccount (namespaced; spec.roles, status.failureReason). Source:
    siderolabs/talos internal/app/machined/pkg/controllers/k8s/manifest.go (`13-talos-service-account-crd`
    rendered when TalosAPIServiceEnabled) and internal/app/machined/pkg/controllers/k8s/internal/k8stemplates
    TalosServiceAccountCRDTemplate, names from pkg/machinery/constants (ServiceAccountResource*). Talos' controller then writes each ServiceAccount's talosconfig Secret: not played here."""
    string = {"type": "string"}
    schema = {"type": "object", "properties": {
        "spec": {"type": "object", "properties": {"roles": {"type": "array", "items": string}}},
        "status": {"type": "object", "properties": {"failureReason": string}}}}
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "serviceaccounts.talos.dev"},
            "spec": {"group": "talos.dev", "scope": "Namespaced", "conversion": {"strategy": "None"},
                     "names": {"kind": "ServiceAccount", "listKind": "ServiceAccountList", "plural": "serviceaccounts",
                               "singular": "serviceaccount", "shortNames": ["tsa"]},
                     "versions": [{"name": "v1alpha1", "served": True, "storage": True, "schema": {"openAPIV3Schema": schema}}]}}


def spec_addresses(spec: Any) -> dict[str, str]:
    """name -> address for every address the spec gives a Talos API: node IPs and cluster VIPs."""
    out: dict[str, str] = {}
    for cluster in spec.clusters:
        for _role, node in cluster.nodes():
            if node.ip.address is not None:
                out[node.name] = str(node.ip.address)
        if getattr(cluster, "vip", None):
            out[f"{cluster.name}-vip"] = str(cluster.vip)
    return out


def _start(box: SandboxContext) -> Stop:
    """The network for the spec's Talos addresses, registered as ("talos", ip) and ("talos",
    name); machines as the saved world left them (those that ran start again; the `guests`
    stand-in then squares them with the VMs fakepve holds)."""
    registry = TalosSandboxRegistry()
    runner = TalosSandboxThread()
    machines = TalosMachines(registry, runner, reboot_seconds=box.options.talos_reboot_seconds)
    for cluster in box.spec.clusters:
        provider = _kubeconfig_provider(box, cluster.name)
        if provider is not None:
            machines.kubeconfigs[cluster.name] = provider
    registry.installers = _installers(box)
    registry.on_node_state = _mirror_in_kubernetes(box)
    box.put(REGISTRY, registry)
    box.put(MACHINES, machines)
    running: list[str] = []
    if box.world is not None:
        document = box.world.file(DOCUMENT)
        saved = document.load() or {}
        if saved.get("version") == VERSION:
            running = machines.restore(saved)
        persist = lambda: document.save(machines.snapshot())  # noqa: E731
        machines.persist = persist
        registry.persist = persist
    try:
        addresses = spec_addresses(box.spec)
        ports = asyncio.run_coroutine_threadsafe(machines.network.listen(sorted(set(addresses.values()))), runner.loop).result(30)
        from tierzero.adapters.connections import Endpoint

        for name, address in addresses.items():
            for alias in dict.fromkeys((address, name)):
                box.connections.add("talos", alias, Endpoint("127.0.0.1", ports[address]))
        machines._starting.update(running)  # noqa: SLF001 - saved as running while they start
        for key in running:
            asyncio.run_coroutine_threadsafe(machines._start(machines.machines[key]), runner.loop).result(30)  # noqa: SLF001
        machines._starting.clear()  # noqa: SLF001
    except BaseException:
        runner.stop()
        raise

    def stop() -> None:
        asyncio.run_coroutine_threadsafe(machines.network.close(), runner.loop).result(10)
        runner.stop()

    return stop


STANDIN = StandIn("talos", _start)

__all__ = ["DOCUMENT", "MACHINES", "REGISTRY", "STANDIN", "TalosMachines", "spec_addresses", "user_data_config"]
