"""The Proxmox VE API through proxmoxer, with API-token auth over HTTPS.

Every call runs in a worker thread (proxmoxer is synchronous). Transient failures (5xx, 595 node
unreachable, lost quorum, timeouts, connection resets) are retried with backoff and jitter until a
deadline; permanent ones (4xx, a task ending in TASK ERROR, a VM locked beyond its own deadline)
become `OperationError` naming the call and a remedy. Worker tasks are polled by UPID until
`stopped`; a failed task's error carries the tail of its log.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable

import requests
from proxmoxer import AuthenticationError, ProxmoxAPI
from proxmoxer.core import ResourceException

from tierzero.adapters import calls
from tierzero.adapters.connections import ClientCache, Connections
from tierzero.adapters.errors import AuthenticationFailed, from_proxmoxer, from_requests
from tierzero.adapters.retry import Policy, RetryExhausted, retry_async
from tierzero.adapters.ssh import retry_policy
from tierzero.errors import OperationError

if TYPE_CHECKING:
    from tierzero.engine.step import StepContext

TOKEN_USER = "root@pam"
TOKEN_NAME = "tierzero"
TOKEN_SECRET_NAME = "proxmox/api-token"  # the secret store key of the token tierzero creates
_LOCKED = re.compile(r"VM is locked|CT is locked|can't lock file|got timeout", re.I)
_PERMANENT_5XX = re.compile(r"does not exist|already exists|not supported|invalid|unable to parse", re.I)


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


class TaskFailed(Exception):
    def __init__(self, upid: str, exitstatus: str, log_tail: list[str]) -> None:
        super().__init__(exitstatus)
        self.upid = upid
        self.exitstatus = exitstatus
        self.log_tail = log_tail


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, requests.exceptions.SSLError):  # a certificate does not fix itself
        return False
    if isinstance(exc, (requests.ConnectionError, requests.Timeout, ConnectionError, TimeoutError)):
        return True
    if isinstance(exc, ApiError):
        if exc.status >= 500 and not _PERMANENT_5XX.search(exc.message) and not _LOCKED.search(exc.message):
            return True
    return False


def _locked(exc: BaseException) -> bool:
    if isinstance(exc, ApiError):
        return exc.status >= 500 and bool(_LOCKED.search(exc.message))
    if isinstance(exc, TaskFailed):
        return bool(_LOCKED.search(exc.exitstatus))
    return False


def _remedy(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, ApiError) and exc.status == 401:
        return "the API token was refused: check token_id/token_secret, or let tierzero recreate its token (hypervisors phase)"
    if isinstance(exc, ApiError) and exc.status == 403:
        return ("the API token lacks a privilege: tierzero's own token gets role TierZero on / in the hypervisors phase; "
                "for a token of yours: pveum acl modify / --tokens <token id> --roles TierZero (see `tierzero deploy --only hypervisors`)")
    if "quorum" in text:
        return "the Proxmox cluster has lost quorum: bring the hosts (or the QDevice witness) back, then run again"
    if "595" in text or "No route to host" in text:
        return "a Proxmox node is offline or unreachable: bring it back, then run again"
    if _LOCKED.search(text):
        return "the guest is locked by another task (backup, migration, snapshot): wait for it, or `qm unlock <vmid>` if it is stale"
    return "check the Proxmox task log and the node's storage and network, then run again"


@dataclass
class ProxmoxClient:
    api: Any  # ProxmoxAPI
    label: str
    policy: Policy = field(default_factory=Policy)
    lock_policy: Policy = field(default_factory=lambda: Policy(deadline=120.0))
    poll_interval: float = 0.5
    task_timeout: float = 1800.0
    on_retry: Callable[[int, str, float], None] | None = None

    # ----------------------------------------------------------------- plumbing

    def _raw(self, method: str, path: str, params: dict[str, Any]) -> Any:
        calls.sent("proxmox", self.label, f"{method.upper()} /{path.lstrip('/')}" + (f" {calls.params_text(params)}" if params else ""))
        try:
            resource = self.api(path.lstrip("/"))
            return getattr(resource, method.lower())(**params)
        except ResourceException as exc:
            message = str(getattr(exc, "content", "") or getattr(exc, "status_message", "") or exc)
            errors = getattr(exc, "errors", None)
            if errors:
                message = f"{message} {errors}"
            raise ApiError(int(exc.status_code), message) from None
        except AuthenticationError as exc:
            raise from_proxmoxer(exc, f"Proxmox API {method.upper()} {path} on {self.label}") from None

    async def call(self, method: str, path: str, **params: Any) -> Any:
        """One API call, retried while transient; anything else becomes an OperationError."""
        what = f"{method.upper()} {path}"
        try:
            return await retry_async(
                lambda: asyncio.to_thread(self._raw, method, path, params),
                policy=self.policy, classify=_transient, on_retry=self.on_retry, what=f"Proxmox API {what}",
            )
        except RetryExhausted as exc:
            cause = exc.__cause__ or exc
            raise OperationError(f"Proxmox API {what} on {self.label} kept failing: {exc.message}", hint=_remedy(cause)) from exc
        except ApiError as exc:
            if _locked(exc):
                raise
            if exc.status == 401:
                raise AuthenticationFailed(f"Proxmox API {what} on {self.label} failed: {exc}", hint=_remedy(exc), status=401) from exc
            raise OperationError(f"Proxmox API {what} on {self.label} failed: {exc}", hint=_remedy(exc)) from exc
        except requests.RequestException as exc:
            raise from_requests(exc, f"Proxmox API {what} on {self.label}") from exc

    async def task(self, method: str, path: str, what: str, **params: Any) -> str:
        """A call that starts a worker task: wait for it; a lock held elsewhere is waited out up to
        lock_policy.deadline, then reported. Returns the UPID."""

        async def once() -> str:
            upid = await self.call(method, path, **params)
            if isinstance(upid, str) and upid.startswith("UPID:"):
                await self.wait_task(upid)
            return str(upid)

        try:
            return await retry_async(once, policy=self.lock_policy, classify=_locked, on_retry=self.on_retry, what=what)
        except RetryExhausted as exc:
            cause = exc.__cause__ or exc
            raise OperationError(f"{what}: the guest stayed locked for {self.lock_policy.deadline:g}s ({cause})", hint=_remedy(cause)) from exc
        except ApiError as exc:
            raise OperationError(f"{what} failed: {exc}", hint=_remedy(exc)) from exc
        except TaskFailed as exc:
            tail = " | ".join(exc.log_tail[-5:])
            raise OperationError(f"{what} failed: task {exc.upid} ended with {exc.exitstatus!r}; log: {tail}", hint=_remedy(exc)) from exc

    async def wait_task(self, upid: str) -> dict[str, Any]:
        node = upid.split(":")[1]
        loop = asyncio.get_running_loop()
        end = loop.time() + self.task_timeout
        while True:
            status = await self.call("get", f"nodes/{node}/tasks/{upid}/status")
            if status.get("status") == "stopped":
                exit_status = str(status.get("exitstatus", ""))
                if exit_status != "OK" and not exit_status.startswith("WARNINGS"):
                    log = await self.call("get", f"nodes/{node}/tasks/{upid}/log", limit=1000)
                    lines = [str(item.get("t", "")) for item in log or []]
                    raise TaskFailed(upid, exit_status, lines[-10:])
                return dict(status)
            if loop.time() > end:
                raise OperationError(f"task {upid} still running after {self.task_timeout:g}s", hint="check the task in the Proxmox UI")
            await asyncio.sleep(self.poll_interval)

    # ----------------------------------------------------------------- cluster

    async def nodes(self) -> list[dict[str, Any]]:
        return list(await self.call("get", "nodes"))

    async def cluster_status(self) -> list[dict[str, Any]]:
        return list(await self.call("get", "cluster/status"))

    async def quorate(self) -> bool:
        for item in await self.cluster_status():
            if item.get("type") == "cluster":
                return bool(item.get("quorate"))
        return True  # a single node without a cluster is always quorate

    async def storage_content(self, node: str, storage: str, content: str | None = None) -> list[dict[str, Any]]:
        params = {"content": content} if content else {}
        return list(await self.call("get", f"nodes/{node}/storage/{storage}/content", **params))

    async def download_url(self, node: str, storage: str, *, url: str, filename: str, content: str, checksum: str | None = None, algorithm: str = "sha256", **extra: Any) -> str:
        params: dict[str, Any] = {"url": url, "filename": filename, "content": content, **extra}
        if checksum:
            params.update({"checksum": checksum, "checksum-algorithm": algorithm})
        return await self.task("post", f"nodes/{node}/storage/{storage}/download-url", f"download {filename} to {storage} on {node}", **params)

    # ----------------------------------------------------------------- guests

    async def guests(self) -> list[dict[str, Any]]:
        return list(await self.call("get", "cluster/resources", type="vm"))

    async def find_guest(self, *, vmid: int | None = None, name: str | None = None, kind: str | None = None) -> dict[str, Any] | None:
        for g in await self.guests():
            if kind and g.get("type") != kind:
                continue
            if vmid is not None and int(g.get("vmid", -1)) == vmid:
                return g
            if vmid is None and name is not None and g.get("name") == name:
                return g
        return None

    async def create_vm(self, node: str, vmid: int, **config: Any) -> str:
        return await self.task("post", f"nodes/{node}/qemu", f"create VM {vmid} on {node}", vmid=vmid, **config)

    async def vm_config(self, node: str, vmid: int) -> dict[str, Any]:
        return dict(await self.call("get", f"nodes/{node}/qemu/{vmid}/config"))

    async def set_vm_config(self, node: str, vmid: int, **changes: Any) -> None:
        await self.task("post", f"nodes/{node}/qemu/{vmid}/config", f"configure VM {vmid}", **changes)

    async def resize_vm_disk(self, node: str, vmid: int, disk: str, size: str) -> None:
        await self.task("put", f"nodes/{node}/qemu/{vmid}/resize", f"resize {disk} of VM {vmid}", disk=disk, size=size)

    async def vm_status(self, node: str, vmid: int) -> str:
        return str((await self.call("get", f"nodes/{node}/qemu/{vmid}/status/current")).get("status"))

    async def start_vm(self, node: str, vmid: int) -> None:
        await self.task("post", f"nodes/{node}/qemu/{vmid}/status/start", f"start VM {vmid}")

    async def stop_vm(self, node: str, vmid: int) -> None:
        await self.task("post", f"nodes/{node}/qemu/{vmid}/status/stop", f"stop VM {vmid}")

    async def delete_vm(self, node: str, vmid: int, purge: bool = True) -> None:
        await self.task("delete", f"nodes/{node}/qemu/{vmid}", f"delete VM {vmid}", purge=int(purge), **{"destroy-unreferenced-disks": 1})

    async def create_lxc(self, node: str, vmid: int, **config: Any) -> str:
        return await self.task("post", f"nodes/{node}/lxc", f"create CT {vmid} on {node}", vmid=vmid, **config)

    async def lxc_config(self, node: str, vmid: int) -> dict[str, Any]:
        return dict(await self.call("get", f"nodes/{node}/lxc/{vmid}/config"))

    async def set_lxc_config(self, node: str, vmid: int, **changes: Any) -> None:
        await self.call("put", f"nodes/{node}/lxc/{vmid}/config", **changes)

    async def lxc_status(self, node: str, vmid: int) -> str:
        return str((await self.call("get", f"nodes/{node}/lxc/{vmid}/status/current")).get("status"))

    async def start_lxc(self, node: str, vmid: int) -> None:
        await self.task("post", f"nodes/{node}/lxc/{vmid}/status/start", f"start CT {vmid}")

    async def stop_lxc(self, node: str, vmid: int) -> None:
        await self.task("post", f"nodes/{node}/lxc/{vmid}/status/stop", f"stop CT {vmid}")

    async def delete_lxc(self, node: str, vmid: int) -> None:
        await self.task("delete", f"nodes/{node}/lxc/{vmid}", f"delete CT {vmid}", purge=1)


def token_for(ctx: "StepContext", node_name: str | None = None) -> tuple[str, str]:
    """(token id, secret): the spec's own token for the node, else the one tierzero created."""
    px = ctx.spec.proxmox
    node = (px.get_node(node_name) if node_name else None) or px.nodes[0]
    if node.token_id and node.token_secret:
        return node.token_id, ctx.secrets.resolve(node.token_secret)
    secret = ctx.secrets.get(TOKEN_SECRET_NAME)
    if not secret:
        raise OperationError(
            "no Proxmox API token is known yet",
            hint="run the hypervisors phase first (it creates root@pam!tierzero), or set token_id/token_secret on the node",
        )
    return f"{TOKEN_USER}!{TOKEN_NAME}", secret


def connect(connections: Connections, name: str, token_id: str, secret: str, *, timeout: float = 30.0) -> ProxmoxClient:
    ep = connections.endpoint("proxmox", name)
    if isinstance(ep.verify, str) and not Path(ep.verify).is_file():
        raise OperationError(f"the Proxmox API of {name} cannot be verified yet: no pinned CA at {ep.verify}",
                             hint="deploy the hypervisors phase first (its api-ca step reads /etc/pve/pve-root-ca.pem over SSH); "
                                  f"if that step is already done, copy that file from the node to {ep.verify}")
    user, _, token_name = token_id.partition("!")
    api = ProxmoxAPI(ep.host, port=ep.port, user=user, token_name=token_name, token_value=secret, verify_ssl=ep.verify, timeout=timeout, service="PVE")
    client = ProxmoxClient(api, label=f"{name} ({ep.host}:{ep.port})", policy=retry_policy(connections, "proxmox"), lock_policy=retry_policy(connections, "lock"))
    if "poll_interval" in ep.extra:
        client.poll_interval = float(ep.extra["poll_interval"])
    return client


def proxmox_client(ctx: "StepContext", node_name: str | None = None) -> ProxmoxClient:
    """The API client for a node (default the first), cached per endpoint and token."""
    name = node_name or ctx.spec.proxmox.nodes[0].name
    token_id, secret = token_for(ctx, name)
    key = (name, token_id, secret)
    client = _CLIENTS.get(ctx.connections, key)
    if client is None:
        client = _CLIENTS.put(ctx.connections, key, connect(ctx.connections, name, token_id, secret))
    return replace(client, on_retry=ctx.retry)  # shares the session; the retry hook is this step's


_CLIENTS: ClientCache[tuple[str, str, str], ProxmoxClient] = ClientCache()
