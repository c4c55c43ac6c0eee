"""A fake Proxmox VE API (the `fakepve` package) served on loopback over HTTPS, on its own event
loop in a daemon thread, as a fresh PVE 9.1 install (`tierzero.sandbox.pve_rules.StockPve`: the
installer's storages, no ACL entries, tokens with privilege separation, PVE's refusals) with the
spec's nodes, and its world on disk.

Faults are fakepve's own: `server.pve.lose_quorum()`, `.set_node_offline(node)`, `.fail(method,
suffix, status, message | error=...)`, `.ceph_down()`, `.snapshot_lock(vmid)`, `.flaky_network(...)`;
coroutine ones (`hold_config_lock`, `backup`) through `server.call(...)`.

The world document "fakepve": `snapshot` / `restore` of what a Proxmox client can observe across
runs (guests, storages and their files, pools, users, tokens, ACLs, firewall, nodes, quorum and
Ceph health), and `WorldFakePve`, a FakePve that saves its snapshot to a `WorldFile` after every
request and every task body, before the client can see the result. Left out, as a rebooted PVE
would lose them too: tickets, tasks and their logs, recorded requests, injected failures, network
conditions, lock holders, console tickets and the guest agent's scripted answers.

In the sandbox (`STANDIN`, "fakepve"): the Proxmox API for the spec's nodes, persisted in the
world; it starts after the SSH host stand-in and links to it, so tokens made with `pveum` are
valid API tokens (and saved: pve.apitokens saves on change).
"""

from __future__ import annotations

import asyncio
import itertools
import tempfile
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from fakepve import FakeCt, FakeVm, TaskError

from tierzero.adapters.connections import Connections, Endpoint
from tierzero.sandbox import pve_hosts
from tierzero.sandbox.context import Handle, SandboxContext, StandIn, Stop
from tierzero.sandbox.pve_rules import StockPve, stock_storages

VERSION = 1
VM_FIELDS = ("name", "node", "status", "qmpstatus", "config", "pending", "template", "lock", "pool",
             "snapshots", "stats", "started_at", "ha_state")
CT_FIELDS = ("node", "status", "config", "pending", "pool", "snapshots", "stats", "started_at", "pid",
             "checkpoint", "ha_state")
_DICT_FIELDS = ("config", "pending", "snapshots", "stats")


def _plain(value: Any) -> Any:
    """A fresh JSON value: sets become sorted lists, tuples lists, keys strings, anything else its
    string (so an odd value a scenario left in `stats` cannot stop the saving)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        return sorted(_plain(v) for v in value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def snapshot(pve: Any) -> dict[str, Any]:
    """The persistent state of a FakePve as a JSON-ready dict."""
    acl = pve.acl
    firewall = pve.__dict__.get("_fw_state")
    return _plain({
        "version": VERSION,
        "cluster_name": pve.cluster_name,
        "quorate": pve.quorate,
        "ceph": dict(pve.ceph),
        # Copies first: the SSH stand-in changes tokens and node flags from its own thread.
        "nodes": {name: dict(state) for name, state in dict(pve.nodes).items()},
        "root": {"user": pve.user, "password": pve.password},
        "users": dict(pve.users),
        "apitokens": dict(pve.apitokens),
        "acl": None if acl is None else {user: [[path, privs] for path, privs in entries] for user, entries in acl.items()},
        "pools": pve.pools,
        "pool_info": pve.pool_info,
        "storages": pve.storages,
        "token_privsep": dict(getattr(pve, "token_privsep", {})),
        "node_volumes": getattr(pve, "node_volumes", {}),
        "vms": [{"vmid": vm.vmid, **{f: getattr(vm, f) for f in VM_FIELDS}} for vm in pve.vms],
        "cts": [{"vmid": ct.vmid, **{f: getattr(ct, f) for f in CT_FIELDS}} for ct in getattr(pve, "cts", [])],
        "firewall": firewall,
        "sdn": getattr(pve, "sdn", None),
    })


def _guest(guest: Any, entry: dict[str, Any], fields: tuple[str, ...]) -> Any:
    for name in fields:
        if name in entry:
            value = entry[name]
            setattr(guest, name, dict(value or {}) if name in _DICT_FIELDS else value)
    return guest


def restore(pve: Any, data: dict[str, Any]) -> None:
    """Put a `snapshot` back into a fresh FakePve (before it serves). What the document holds
    replaces pve's own; what it lacks (an older document) stays; keys it does not know are ignored."""
    if "cluster_name" in data:
        pve.cluster_name = str(data["cluster_name"])
    if "quorate" in data:
        pve.quorate = bool(data["quorate"])
    if isinstance(data.get("ceph"), dict):
        pve.ceph.update(data["ceph"])
    if isinstance(data.get("nodes"), dict):
        pve.nodes = {name: dict(state) for name, state in data["nodes"].items()}
    root = data.get("root") or {}
    if root.get("user") == pve.user and isinstance(root.get("password"), str):
        pve.password = root["password"]
    if isinstance(data.get("users"), dict):
        pve.users = dict(data["users"])
    if isinstance(data.get("apitokens"), dict):
        pve.apitokens.clear()  # in place: WorldFakePve watches this dict
        pve.apitokens.update(data["apitokens"])
    if "acl" in data:
        acl = data["acl"]
        pve.acl = None if acl is None else {user: [(path, set(privs)) for path, privs in entries] for user, entries in acl.items()}
    if isinstance(data.get("pools"), dict):
        pve.pools = {name: {int(vmid) for vmid in ids} for name, ids in data["pools"].items()}
    if isinstance(data.get("pool_info"), dict):
        pve.pool_info = {name: {**meta, "storage": set(meta.get("storage") or ())} for name, meta in data["pool_info"].items()}
    if isinstance(data.get("node_volumes"), dict):
        pve.node_volumes = {sid: {node: dict(vols) for node, vols in nodes.items()} for sid, nodes in data["node_volumes"].items()}
    if isinstance(data.get("token_privsep"), dict):
        pve.token_privsep = {str(k): int(v) for k, v in data["token_privsep"].items()}
    if isinstance(data.get("storages"), dict):
        pve.storages = {name: {**store, "files": set(store["files"])} if "files" in store else dict(store)
                        for name, store in data["storages"].items()}
    if isinstance(data.get("vms"), list):
        pve.vms = [_guest(FakeVm(int(e["vmid"]), e.get("name") or f"VM {e['vmid']}"), e, VM_FIELDS) for e in data["vms"]]
    if isinstance(data.get("cts"), list):
        pve.cts = [_guest(FakeCt(int(e["vmid"]), defaults=False), e, CT_FIELDS) for e in data["cts"]]
        pids = [ct.pid for ct in pve.cts if isinstance(ct.pid, int)]
        if pids and hasattr(pve, "_ct_pids"):
            pve._ct_pids = itertools.count(max(2000, max(pids) + 1))  # no pid handed out twice
    if isinstance(data.get("sdn"), dict) and hasattr(pve, "sdn"):
        pve.sdn = data["sdn"]
    firewall = data.get("firewall")
    if isinstance(firewall, dict):
        firewall = dict(firewall)
        firewall["guests"] = {int(vmid): conf for vmid, conf in (firewall.get("guests") or {}).items()}
        pve.__dict__["_fw_state"] = firewall


class _WatchedDict(dict[str, str]):
    """A dict that calls `on_change` after every change (for pve.apitokens, which `pveum` in the SSH
    stand-in fills from its own thread, outside any API request)."""

    def __init__(self, data: dict[str, str], on_change: Callable[[], None]) -> None:
        super().__init__(data)
        self._on_change = on_change

    def __setitem__(self, key: str, value: str) -> None:
        super().__setitem__(key, value)
        self._on_change()

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self._on_change()

    def pop(self, *args: Any) -> Any:
        value = super().pop(*args)
        self._on_change()
        return value

    def update(self, *args: Any, **kwargs: Any) -> None:
        super().update(*args, **kwargs)
        self._on_change()

    def clear(self) -> None:
        super().clear()
        self._on_change()

    def setdefault(self, key: str, default: Any = None) -> Any:
        value = super().setdefault(key, default)
        self._on_change()
        return value

    def popitem(self) -> tuple[str, str]:
        item = super().popitem()
        self._on_change()
        return item


class WorldFakePve(StockPve):
    """A FakePve that writes its snapshot to `world` (a WorldFile, once `attach`ed) whenever it
    changed: after each request, before the answer leaves; after each task body, before the task
    shows as stopped; and when a token is added or removed from any thread."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.world: Any = None
        self._save_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.apitokens: dict[str, str] = _WatchedDict(self.apitokens, self.save_now)

    def attach(self, world: Any) -> None:
        """Save to this WorldFile from now on, starting with the current state."""
        self.world = world
        self.save_now()

    def checkpoint(self) -> None:
        """Save the snapshot (the WorldFile skips one equal to what it last wrote). Call on the
        server's loop (or while it is not running); `save_now` works from anywhere."""
        if self.world is None:
            return
        with self._save_lock:  # a snapshot taken earlier never lands after a later one
            self.world.save(snapshot(self))

    def save_now(self, timeout: float = 30.0) -> None:
        """`checkpoint` from any thread: on the server's loop when it runs in another thread."""
        if self.world is None:
            return
        loop = self._loop
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        if loop is None or here is loop or not loop.is_running():
            self.checkpoint()
            return

        async def on_loop() -> None:
            self.checkpoint()

        asyncio.run_coroutine_threadsafe(on_loop(), loop).result(timeout)

    async def start(self, certfile: str, keyfile: str) -> None:
        self._loop = asyncio.get_running_loop()
        self.certfile = certfile  # the stand-in hosts' /etc/pve/pve-root-ca.pem (pve_hosts.server)
        await super().start(certfile, keyfile)

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            return await super()._middleware(request, handler)
        finally:
            # GETs too: state changed outside a request (a background HA action, a test's
            # scenario) is saved before a client can read it.
            self.checkpoint()

    async def task(self, node: str, ttype: str, tid: Any, user: str, body: Callable[[], Any], vm: Any = None,
                   lock: bool = True, log: Any = ()) -> str:
        async def saving_body() -> Any:
            try:
                return await body()
            finally:
                try:
                    self.checkpoint()
                except Exception as exc:  # the task must end, and say why
                    raise TaskError(f"sandbox: the world could not be saved: {exc}") from exc

        return await super().task(node, ttype, tid, user, saving_body, vm=vm, lock=lock, log=log)


DOCUMENT = "fakepve"  # the world document's name


@dataclass
class FakePveServer:
    pve: Any  # fakepve.FakePve
    cafile: str
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread
    _tmp: Any = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return self.pve.url

    def call(self, coro: Any, timeout: float = 30) -> Any:
        """Run one of fakepve's coroutine faults on the server loop."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def connections(self, connections: Connections | None = None, nodes: Iterable[str] | None = None) -> Connections:
        conns = connections or Connections(target="sandbox")
        for node in nodes if nodes is not None else sorted(self.pve.nodes):
            conns.add("proxmox", node, Endpoint(self.pve.host, self.pve.port, scheme="https", verify=self.cafile, extra={"poll_interval": 0.02}))
        return conns

    def creates(self, kind: str = "qemu") -> int:
        """How many create requests (POST /nodes/*/qemu or /lxc) the fake saw: the idempotency figure."""
        suffix = "/" + kind
        return sum(1 for method, path, _ in self.pve.requests if method == "POST" and path.endswith(suffix) and "/nodes/" in path)

    def requests_matching(self, method: str, fragment: str) -> int:
        return sum(1 for m, path, _ in self.pve.requests if m == method and fragment in path)

    def stop(self) -> None:
        try:
            from fakepve import settle

            self.call(settle())
            self.call(self.pve.stop())
            self.pve.save_now()  # what background tasks changed since the last request
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            if self._tmp is not None:
                self._tmp.cleanup()


def start_fakepve(
    nodes: Iterable[str],
    *,
    layout: str = "lvmthin",
    cluster_name: str = "tierzero",
    time_scale: float = 0.0,
    user: str = "root@pam",
    password: str = "sandbox-only",
    world: Any = None,
) -> FakePveServer:
    """Start fakepve on 127.0.0.1 with a port the system picks: a fresh install's storages
    (`layout`: the installer's "lvmthin" default or "zfs"), nodes added online. With `world` (a
    WorldFile) the saved state comes back first, the nodes it lacks are added, and every change is
    saved from then on. Nothing the product would set up (storage content, tokens, ACLs) is added."""
    from fakepve.certs import make_cert

    saved = world.load() if world is not None else None
    tmp = tempfile.TemporaryDirectory(prefix="tierzero-fakepve-")
    certfile, keyfile, _ = make_cert(tmp.name, hosts=("127.0.0.1",))
    pve = WorldFakePve(user=user, password=password, host="127.0.0.1", port=0)
    pve.time_scale = time_scale
    pve.cluster_name = cluster_name
    pve.nodes = {}
    pve.storages = stock_storages(layout)
    if saved is not None:
        restore(pve, saved)
    for node in nodes:
        if node not in pve.nodes:  # a saved node keeps its online flag
            pve.add_node(node)
    if world is not None:
        pve.attach(world)  # before it serves: the first answer already finds the document
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="fakepve", daemon=True)
    thread.start()
    server = FakePveServer(pve, certfile, loop, thread, tmp)
    try:
        server.call(pve.start(certfile, keyfile))
    except BaseException:
        loop.call_soon_threadsafe(loop.stop)
        tmp.cleanup()
        raise
    return server


def start_for_spec(spec: Any, **kwargs: Any) -> FakePveServer:
    px = spec.proxmox
    return start_fakepve([n.name for n in px.nodes], cluster_name=px.cluster_name, **kwargs)


def cafile_path(server: FakePveServer) -> Path:
    return Path(server.cafile)


SERVER: Handle[FakePveServer] = Handle("fakepve")


def _start(box: SandboxContext) -> Stop:
    if not box.spec.has_proxmox:  # Talos directly on A1 instances: no Proxmox host to play
        return lambda: None
    world = box.world.file(DOCUMENT) if box.world is not None else None
    server = box.put(SERVER, start_for_spec(box.spec, time_scale=box.options.pve_time_scale, layout=box.options.pve_storage_layout, world=world))
    server.connections(box.connections, nodes=[n.name for n in box.spec.proxmox.nodes])
    hosts = box.get(pve_hosts.HOSTS)
    if hosts is not None:
        hosts.pve = server.pve  # their tokens and ACLs (restored, or made later with pveum) hold here
    return server.stop


STANDIN = StandIn("fakepve", _start)
