"""Everything one command needs, wired once: the spec, the workspace, the connections of the
target (a started sandbox, or endpoints derived from the spec), the secret store, the state
store, the workspace lock and the steps of every phase present."""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tierzero.adapters import calls
from tierzero.adapters.redact import process_redactor
from tierzero.adapters.connections import Connections, Endpoint
from tierzero.engine.lock import WorkspaceLock
from tierzero.engine.runner import Runner
from tierzero.engine.state import StateStore
from tierzero.engine.step import EventSink, Step
from tierzero.errors import InputError

if TYPE_CHECKING:
    from tierzero.sandbox.harness import Sandbox
    from tierzero.sandbox.world import World
    from tierzero.spec.models import Platform
    from tierzero.workspace import Workspace
    from tierzero.workspace.secrets import WorkspaceSecrets


def _unbind_calls(token: Any) -> None:
    try:
        calls.unbind(token)
    except ValueError:  # closed from another context than it was opened in: nothing to restore there
        pass


def kubeconfig_path(workspace: Workspace, cluster: str) -> Path:
    return workspace.cluster_dir(cluster) / "kubeconfig"


def talosconfig_path(workspace: Workspace, cluster: str) -> Path:
    return workspace.cluster_dir(cluster) / "talosconfig"


def real_connections(spec: Platform, workspace: Workspace) -> Connections:
    """Endpoints a real run knows from the spec alone; steps publish the rest (instance
    addresses) through their outputs (see Runner._publish_endpoints)."""
    from tierzero.phases.pve_api_ca import pinned_ca_path

    conns = Connections(target="real", known_hosts=Path(workspace.root) / "known_hosts")
    for pve in spec.proxmox.nodes:
        if pve.address:
            conns.add("ssh", pve.name, Endpoint(str(pve.address), pve.ssh.port, scheme="ssh", extra={"user": pve.ssh.user}))
            url = pve.api_url or f"https://{pve.address}:8006"
            host, _, port = url.removeprefix("https://").rstrip("/").partition(":")
            # Verified against the cluster CA `hypervisors/api-ca` reads over SSH (phases/pve_api_ca).
            conns.add("proxmox", pve.name, Endpoint(host, int(port or 8006), verify=str(pinned_ca_path(workspace.root))))
    for cluster in spec.clusters:
        host, _, port = cluster.endpoint.removeprefix("https://").partition(":")
        conns.add("kubernetes", cluster.name, Endpoint(host, int(port), extra={"kubeconfig": str(kubeconfig_path(workspace, cluster.name))}))
        for _, node in cluster.nodes():
            if node.ip.address:
                conns.add("talos", str(node.ip.address), Endpoint(str(node.ip.address), 50000))
    if spec.oci is not None and any("bastion" in m.roles for m in spec.oci.micro_instances):
        from tierzero.adapters.tunnel import BastionTunnel

        conns.tunnel = BastionTunnel(conns, key_path=workspace.ssh_key)  # private addresses only answer behind the bastion
    if spec.oci is not None:
        conns.add("oci", "default", Endpoint(f"iaas.{spec.oci.region}.oraclecloud.com", 443,
                                             extra={"profile": spec.oci.config_profile, "service_endpoint": False}))
    return conns


def _match_world(state: StateStore, world: World | None) -> None:
    """Steps recorded against another sandbox world (wiped, or never persisted) describe
    nothing that exists: forget them, so this run builds the new world from the start."""
    if world is None or state.get_meta("sandbox_world") != world.id:
        state.forget_all()
        state.set_meta("sandbox_world", world.id if world is not None else "")


def secret_store(workspace: Workspace, base_dir: Path) -> WorkspaceSecrets:
    from tierzero.workspace.secrets import WorkspaceSecrets

    return WorkspaceSecrets(workspace, base_dir)


@dataclass
class Session:
    spec_path: Path
    target: str
    emit: EventSink | None = None
    lock: bool = True
    offline: bool = False  # no connections (status): nothing is contacted or started
    sandbox_options: dict[str, Any] = field(default_factory=dict)
    steps: list[Step] | None = None
    loaded: Any = None  # the spec the preflight loaded from spec_path (a LoadedSpec): not read and parsed again

    def __post_init__(self) -> None:
        if self.target not in ("real", "sandbox"):
            raise InputError(f"--target: unknown target {self.target!r}", hint="use real or sandbox")
        self._stack = ExitStack()
        self.sandbox: Sandbox | None = None
        self.runner: Runner | None = None
        self.shared: Any = None  # the SharedWorkspace of a spec with shared_state, while the session is open

    def open(self) -> Runner:
        from tierzero.spec import load_spec
        from tierzero.workspace import Workspace

        loaded = self.loaded if self.loaded is not None else load_spec(self.spec_path)
        self.spec = loaded.platform
        self.workspace = Workspace.beside(self.spec_path)
        self.workspace.state_dir.mkdir(parents=True, exist_ok=True)
        try:
            # A started sandbox writes its world back as it serves: one process owns it at a time,
            # even for a read-only command like validate.
            if self.emit is not None:  # requests sent outside any step (e.g. `validate`) are still `call` events
                self._stack.callback(_unbind_calls, calls.bind(lambda **f: self.emit("call", step="", phase="", **f)))  # type: ignore[misc]
            if self.lock or (self.target == "sandbox" and not self.offline):
                emit = self.emit
                notify = (lambda m: emit("log", step="", message=m, level="notice")) if emit is not None else None
                self._stack.enter_context(WorkspaceLock(self.workspace.state_dir / "lock", notify=notify))
            if self.lock and self.spec.shared_state is not None:
                self._open_shared(loaded.base_dir)
            self.state = StateStore.open(self.workspace.state_dir, self.target)
            self._stack.callback(self.state.close)
            if self.offline:
                connections = Connections(target="sandbox" if self.target == "sandbox" else "real")
            elif self.target == "sandbox":
                from tierzero.sandbox.harness import Sandbox
                from tierzero.workspace.keys import init_workspace

                if not (self.workspace.ssh_key.exists() and self.workspace.age_key.exists()):
                    init_workspace(self.workspace)  # stand-ins trust the workspace key from the start

                box = Sandbox(self.spec, self.workspace, **self.sandbox_options)
                connections = box.start()
                self._stack.callback(box.stop)
                self.sandbox = box
                _match_world(self.state, box.world)
            else:
                connections = real_connections(self.spec, self.workspace)
                if connections.tunnel is not None:
                    self._stack.callback(connections.tunnel.close)
            if self.steps is None:
                from tierzero.phases.registry import all_steps

                self.steps = all_steps(self.spec)
            redact = process_redactor().redact
            if self.emit is not None and hasattr(self.emit, "redact"):
                self.emit.redact = redact  # type: ignore[attr-defined]
            self.runner = Runner(self.steps, spec=self.spec, workspace=self.workspace, target=self.target, connections=connections,
                                 secrets=secret_store(self.workspace, loaded.base_dir), state=self.state, emit=self._shared_emit(), redact=redact)
        except BaseException:
            self._stack.close()
            raise
        return self.runner

    def _open_shared(self, base_dir: Path) -> None:
        """Take the team's run lock in the shared_state bucket and start from the workspace state kept
        there; on close (after the state store closes) write it back, then release the lock."""
        from tierzero.adapters.s3_objects import S3Objects
        from tierzero.adapters.shared_state import SharedRunLock, SharedWorkspace

        shared = self.spec.shared_state
        assert shared is not None
        secrets = secret_store(self.workspace, base_dir)
        objects = S3Objects(endpoint=shared.endpoint, region=shared.region, bucket=shared.bucket,
                            access_key=secrets.resolve(shared.access_key), secret_key=secrets.resolve(shared.secret_key))
        lock = SharedRunLock(objects, shared.prefix, lease_seconds=shared.lease_seconds, wait_seconds=shared.wait_minutes * 60,
                             target=self.target, notify=self._notice)
        lock.acquire()
        self._stack.callback(lock.release)
        bundle = SharedWorkspace(objects, shared.prefix, self.workspace.root)
        bundle.pull()
        self._stack.callback(bundle.push)
        self.shared = bundle

    def _notice(self, message: str) -> None:
        if self.emit is not None:
            self.emit("log", step="", message=message, level="notice")

    def _shared_emit(self) -> EventSink | None:
        """The event sink for the runner: with a shared state, each finished step is also written to the bucket
        (a run killed half-way leaves there every step it finished and every secret it made)."""
        bundle, emit = getattr(self, "shared", None), self.emit
        if bundle is None:
            return emit

        def with_push(kind: str, **fields: Any) -> None:
            if emit is not None:
                emit(kind, **fields)
            if kind == "step_done":
                from tierzero.errors import OperationError

                try:
                    bundle.push()
                except OperationError as exc:  # the final push, when the run ends, reports it
                    self._notice(f"could not write the shared state yet: {exc.message}")
        return with_push

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> Runner:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def sandbox_guests(self) -> list[str]:
        """VMs and containers the sandbox Proxmox holds ("vmid name"): after a destroy, none."""
        from tierzero.sandbox import fakepve

        box = self.sandbox
        server = box.context.get(fakepve.SERVER) if box is not None and box.context is not None else None
        if server is None:
            return []
        pve = server.pve
        return sorted(f"{g.vmid} {getattr(g, 'name', '')}".strip() for g in [*pve.vms, *getattr(pve, "cts", [])])

    def sandbox_world_gone(self) -> bool:
        """Whether the sandbox world the state was built against is gone (wiped, or never saved)."""
        from tierzero.sandbox.world import World

        return World.current_id(self.workspace) != self.state.get_meta("sandbox_world")

    def wipe_sandbox_world(self) -> None:
        from tierzero.sandbox.world import World

        World.wipe(self.workspace)

    def locations(self) -> dict[str, str]:
        out = {"workspace": str(self.workspace.root), "state": str(self.state.path), "render": str(self.workspace.render_dir)}
        for cluster in self.spec.clusters:
            out[f"kubeconfig ({cluster.name})"] = str(kubeconfig_path(self.workspace, cluster.name))
            out[f"talosconfig ({cluster.name})"] = str(talosconfig_path(self.workspace, cluster.name))
        return out
