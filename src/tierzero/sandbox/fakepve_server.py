"""A fake Proxmox VE API (the `fakepve` package) served on loopback over HTTPS, on its own event
loop in a daemon thread, seeded with the spec's nodes and storages.

Faults are fakepve's own: `server.pve.lose_quorum()`, `.set_node_offline(node)`, `.fail(method,
suffix, status, message | error=...)`, `.ceph_down()`, `.snapshot_lock(vmid)`, `.flaky_network(...)`;
coroutine ones (`hold_config_lock`, `backup`) through `server.call(...)`.

With a `WorldFile` (the harness passes the workspace world's "fakepve" document) the fake starts
from the saved state and saves every change before a client sees it (see fakepve_world).
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tierzero.adapters.connections import Connections, Endpoint

FILE_CONTENT = "iso,vztmpl,backup,import,snippets"
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
    storages: Iterable[str] = ("local", "local-lvm"),
    image_storage: str = "local",
    cluster_name: str = "tierzero",
    time_scale: float = 0.0,
    user: str = "root@pam",
    password: str = "sandbox-only",
    world: Any = None,
) -> FakePveServer:
    """Start fakepve on 127.0.0.1 with a port the system picks; nodes are added online. With
    `world` (a WorldFile) the saved state comes back first, the nodes and storages it lacks are
    added, and every change is saved from then on."""
    from fakepve.certs import make_cert

    from tierzero.sandbox.fakepve_world import WorldFakePve, restore

    saved = world.load() if world is not None else None
    tmp = tempfile.TemporaryDirectory(prefix="tierzero-fakepve-")
    certfile, keyfile, _ = make_cert(tmp.name, hosts=("127.0.0.1",))
    pve = WorldFakePve(user=user, password=password, host="127.0.0.1", port=0)
    pve.time_scale = time_scale
    pve.cluster_name = cluster_name
    pve.nodes = {}
    if saved is not None:
        restore(pve, saved)
    for node in nodes:
        if node not in pve.nodes:  # a saved node keeps its online flag
            pve.add_node(node)
    for name in storages:
        if name not in pve.storages:
            pve.storages[name] = {"type": "lvmthin", "active": 1, "content": "images,rootdir", "files": set(), "vgname": "pve", "thinpool": "data"}
    store = pve.storages.setdefault(image_storage, {"type": "dir", "active": 1, "files": set(), "path": f"/var/lib/vz-{image_storage}", "avail": 50 * 1024**3})
    if saved is None or image_storage not in (saved.get("storages") or {}):
        store["content"] = FILE_CONTENT
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
    storages = {px.storage, px.image_storage, "local", "local-lvm"}
    return start_fakepve([n.name for n in px.nodes], storages=sorted(storages), image_storage=px.image_storage, cluster_name=px.cluster_name, **kwargs)


def cafile_path(server: FakePveServer) -> Path:
    return Path(server.cafile)


def _sandbox_factory(box: Any) -> Any:
    """Harness factory "fakepve": the Proxmox API for the spec's nodes, persisted in the world's
    "fakepve" document; links to the SSH stand-in (whichever starts first) so tokens made with
    `pveum` are valid API tokens (and saved: pve.apitokens saves on change)."""
    world = box.world.file(DOCUMENT) if box.world is not None else None
    server = start_for_spec(box.spec, time_scale=float(box.options.get("pve_time_scale", 0.0)), world=world)
    box.shared["fakepve"] = server
    server.connections(box.connections, nodes=[n.name for n in box.spec.proxmox.nodes])
    hosts = box.shared.get("pve_hosts")
    if hosts is not None:
        hosts.pve = server.pve
        server.pve.apitokens.update(hosts.cluster.tokens)
    return server.stop


try:
    from tierzero.sandbox.harness import register as _register
except ImportError:  # pragma: no cover - harness not present
    pass
else:
    _register("fakepve", _sandbox_factory)
