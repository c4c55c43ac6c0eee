"""The sandbox: every stand-in started on loopback (port 0, assigned) and a `Connections`
whose endpoints point the real clients at them. Production code is the same in both
targets; only this lookup differs.

Registration API (for stand-in authors)
---------------------------------------
A stand-in is a *factory*::

    def factory(box: SandboxContext) -> Callable[[], None]:
        server = MyStandIn(...).start()                      # listen on 127.0.0.1, port 0
        for node in box.spec.proxmox.nodes:                  # one endpoint per spec thing
            box.connections.add("ssh", node.name, Endpoint("127.0.0.1", server.port, scheme="ssh"))
        return server.stop                                   # how to stop it

    register("pve-hosts", factory)                           # at import time of your module

`box` carries `spec` (Platform), `workspace`, `connections` (add endpoints, or set
`connections.ssh_key` / `known_hosts`), `state_dir` (a per-sandbox scratch directory),
`shared` (a dict to hand objects between factories, e.g. a CA) and `world`
(`tierzero.sandbox.world.World`, or None when the sandbox does not persist): a stand-in
loads its document with `box.world.file(NAME).load()`, adds what the spec asks for that the
saved world lacks, and saves its document after every change a client could observe. Factories run in
`START_ORDER`, then the others in registration order; registering a name again
replaces the factory. The harness imports the modules in `STANDIN_MODULES` (when present)
before starting, so a module registers itself by calling `register` at import.
`Sandbox.register` is the same function. `Sandbox(spec, ws, **options)` hands `options` to
every factory as `box.options` (builtins read `flux_ready_after`, seconds until Flux objects
turn Ready, and `kube_fail_first`, requests the Kubernetes API answers 503 before it is up);
`start(only=[names])` starts a subset.

Builtins: "kubernetes" (one HTTPS API per cluster with its nodes Ready and, with gitops, a
bootstrapped flux-system Kustomization; endpoint ("kubernetes", CLUSTER)), "oci" (compute,
budgets, usage = $0.00; endpoint ("oci", "default") with a throwaway signer) and
"gitops-offline" (install manifests are stubbed instead of fetched), "tofu-twin"
(connections.state["tofu_layer"] = "oci_twin": the cloud phase applies the twin module) and
"sandbox-clock" (waits poll on the stand-ins' compressed clock).

The world persists in the workspace (`Sandbox(..., persist=False)` for a throwaway one), so
`tierzero deploy --target sandbox` run twice skips what the first run finished, and a killed
run resumes against the VMs, nodes and objects it left behind.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tierzero.adapters.connections import Connections, Endpoint

STANDIN_MODULES = ("tierzero.sandbox.talos_api", "tierzero.sandbox.pve_hosts", "tierzero.sandbox.fakepve_server",
                   "tierzero.sandbox.infisical", "tierzero.sandbox.tofu")


@dataclass
class SandboxContext:
    spec: Any  # tierzero.spec.Platform
    workspace: Any  # tierzero.workspace.Workspace
    connections: Connections
    state_dir: Path
    shared: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    world: Any = None  # tierzero.sandbox.world.World | None


StandInFactory = Callable[[SandboxContext], Callable[[], None]]
_FACTORIES: dict[str, StandInFactory] = {}
# Start order of the known stand-ins, whatever order their modules were imported in: later
# ones link to earlier ones (fakepve to the hosts' tokens, Infisical's template to fakepve).
START_ORDER = ("kubernetes", "oci", "gitops-offline", "tofu-twin", "sandbox-clock", "talos", "pve-hosts", "fakepve", "infisical")


def _start_order() -> list[tuple[str, StandInFactory]]:
    rank = {name: i for i, name in enumerate(START_ORDER)}
    return sorted(_FACTORIES.items(), key=lambda item: rank.get(item[0], len(rank)))


def register(name: str, factory: StandInFactory) -> None:
    """Add (or replace) a stand-in the sandbox starts."""
    _FACTORIES[name] = factory


def registered() -> list[str]:
    _import_standins()
    return list(_FACTORIES)


def _import_standins() -> None:
    for module in STANDIN_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise


# ------------------------------------------------------------------ builtin stand-ins


def _kubernetes(box: SandboxContext) -> Callable[[], None]:
    from tierzero.sandbox.kube_api import KubeApiServer, KubeState, node_object

    servers = []
    for cluster in box.spec.clusters:
        nodes = [node_object(n.name, str(n.ip).split("/")[0] if n.ip != "dhcp" else "", role) for role, n in cluster.nodes()]
        state = KubeState(nodes, ready_after=float(box.options.get("flux_ready_after", 0.2)),
                          fail_first=int(box.options.get("kube_fail_first", 0)))
        if cluster.gitops is not None:  # no Flux runs here: the stand-in plays a bootstrapped one
            state.seed("/apis/kustomize.toolkit.fluxcd.io/v1", "flux-system", "kustomizations", {
                "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization", "metadata": {"name": "flux-system"},
                "spec": {"path": f"./{cluster.gitops.path}".rstrip("/") or ".", "interval": "10m", "prune": True,
                         "sourceRef": {"kind": "GitRepository", "name": "flux-system"}}})
        if box.world is not None:
            state.attach(box.world.file(f"kubernetes-{cluster.name}"))
        server = KubeApiServer(state, tls_dir=box.state_dir / "kube-tls").start()
        servers.append(server)
        box.shared.setdefault("kube_servers", {})[cluster.name] = server
        box.connections.add("kubernetes", cluster.name,
                            Endpoint("127.0.0.1", server.port, scheme="https", verify=server.ca_file or False, extra={"token": "sandbox"}))

    def stop() -> None:
        for server in servers:
            server.stop()

    return stop


def _oci(box: SandboxContext) -> Callable[[], None]:
    if box.spec.oci is None:
        return lambda: None
    from tierzero.adapters.oci import throwaway_signer
    from tierzero.sandbox.oci_api import OciApiServer, OciState

    server = OciApiServer(OciState.from_spec(box.spec)).start()
    box.shared["oci_server"] = server
    box.connections.add("oci", "default", Endpoint("127.0.0.1", server.port, scheme="http", extra={
        "signer": throwaway_signer(box.spec.oci.tenancy_ocid), "region": box.spec.oci.region, "tenancy": box.spec.oci.tenancy_ocid}))
    return server.stop


def _offline_installs(box: SandboxContext) -> Callable[[], None]:
    """The GitOps phase fetches pinned install manifests (Flux, Argo CD) from the internet; the
    sandbox is offline, so it gets a stub holding just the engine's namespace."""
    try:
        from tierzero.phases.gitops import GitopsHooks
    except ImportError:
        return lambda: None

    def fetch(url: str) -> str:
        namespace = "argocd" if "argo" in url else "flux-system"
        return f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {namespace}\n"

    box.connections.state.setdefault("gitops_hooks", GitopsHooks(fetch=fetch))
    return lambda: None


def _tofu_twin(box: SandboxContext) -> Callable[[], None]:
    """The cloud phase applies the `oci_twin` layer (terraform_data only) instead of `oci`.
    Option `oci_full_ads`: availability domains out of A1 capacity (creates there fail with
    OCI's "Out of host capacity"); `oci_no_a1_ads`: ADs that do not offer A1 at all ("shape … not
    found"); the capacity hunt backs off on the sandbox's clock."""
    from tierzero.adapters.capacity import Backoff

    state = box.connections.state
    state.setdefault("tofu_layer", "oci_twin")
    state.setdefault("capacity_backoff", Backoff(base_seconds=0.05, cap_seconds=0.2))
    env = {}
    for option, variable in (("oci_full_ads", "TIERZERO_TWIN_FULL_ADS"), ("oci_no_a1_ads", "TIERZERO_TWIN_NO_A1_ADS")):
        if box.options.get(option):
            env[variable] = " ".join(box.options[option])
    if env:
        state.setdefault("tofu_env", env)
    return lambda: None


def _sandbox_clock(box: SandboxContext) -> Callable[[], None]:
    """Stand-ins reboot in tenths of a second where real machines take minutes: waits poll on
    the same compressed clock (deadlines stay generous)."""
    from tierzero.adapters.retry import Policy

    box.connections.state.setdefault("retry:wait", Policy(base=0.1, cap=1.0, deadline=120.0))
    return lambda: None


register("kubernetes", _kubernetes)
register("oci", _oci)
register("gitops-offline", _offline_installs)
register("tofu-twin", _tofu_twin)
register("sandbox-clock", _sandbox_clock)


class Sandbox:
    """Start every registered stand-in for a spec; `connections` then reaches them all."""

    def __init__(self, spec: Any, workspace: Any, *, persist: bool = True, **options: Any) -> None:
        self.spec, self.workspace, self.options, self.persist = spec, workspace, options, persist
        self.world: Any = None
        self.connections = Connections(target="sandbox")
        self._stops: list[tuple[str, Callable[[], None]]] = []
        self.context: SandboxContext | None = None

    register = staticmethod(register)

    def start(self, only: list[str] | None = None) -> Connections:
        _import_standins()
        state_dir = Path(self.workspace.root) / "sandbox"
        state_dir.mkdir(parents=True, exist_ok=True)
        if self.persist:
            from tierzero.sandbox.world import World
            from tierzero.workspace.keys import create_age_identity

            if not self.workspace.age_key.exists():
                Path(self.workspace.root).mkdir(parents=True, exist_ok=True)
                create_age_identity(self.workspace)
            self.world = World.open(self.workspace)
        self.context = SandboxContext(self.spec, self.workspace, self.connections, state_dir, options=dict(self.options), world=self.world)
        try:
            for name, factory in _start_order():
                if only is None or name in only:
                    self._stops.append((name, factory(self.context)))
        except BaseException:
            self.stop()
            raise
        return self.connections

    def stop(self) -> None:
        while self._stops:
            _, stop = self._stops.pop()
            try:
                stop()
            except Exception:  # noqa: BLE001 - stopping the rest matters more
                pass

    def __enter__(self) -> Connections:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
