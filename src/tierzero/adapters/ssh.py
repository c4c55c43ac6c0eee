"""Run commands on the Proxmox hosts (and the quorum witness) over SSH with asyncssh.

Targets come from `Connections.endpoint("ssh", name)`; the key is the workspace key. Host keys are
trusted on first use and recorded in `.tierzero/known_hosts`; a changed key is refused. Connection
errors are retried with backoff and jitter until a deadline; a command's own failure is not retried
here (the caller decides). Secrets are masked in everything that reaches a log or an error.
"""

from __future__ import annotations

import asyncio
import random
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterable, TypeVar

import asyncssh

from tierzero.adapters.connections import Connections, Endpoint
from tierzero.adapters.redact import Redactor
from tierzero.errors import OperationError

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How long to keep trying a transient failure: exponential backoff with full jitter."""

    deadline: float = 300.0  # seconds in all
    base: float = 1.0
    cap: float = 20.0

    def delays(self) -> Iterable[float]:
        attempt = 0
        while True:
            yield random.uniform(self.base / 2, min(self.cap, self.base * 2**attempt))
            attempt += 1


def retry_policy(connections: Connections | None, kind: str) -> RetryPolicy:
    """The policy for a kind of call; a sandbox or a test may shorten it via connections.state."""
    if connections is not None:
        found = connections.state.get(f"retry:{kind}") or connections.state.get("retry")
        if isinstance(found, RetryPolicy):
            return found
    return RetryPolicy()


async def with_retries(
    what: str,
    call: Callable[[], Awaitable[T]],
    transient: Callable[[BaseException], str | None],
    policy: RetryPolicy,
    on_retry: Callable[[int, str, float], None] | None = None,
    give_up: Callable[[str], BaseException] | None = None,
) -> T:
    """Run `call`; while `transient(exc)` names a cause, sleep and try again until the deadline."""
    loop = asyncio.get_running_loop()
    end = loop.time() + policy.deadline
    delays = iter(policy.delays())
    attempt = 0
    while True:
        attempt += 1
        try:
            return await call()
        except Exception as exc:  # noqa: BLE001 - classified just below
            cause = transient(exc)
            if cause is None:
                raise
            delay = next(delays)
            if loop.time() + delay > end:
                if give_up is not None:
                    raise give_up(cause) from exc
                raise OperationError(f"{what}: still failing after {policy.deadline:.0f}s: {cause}") from exc
            if on_retry is not None:
                on_retry(attempt, cause, delay)
            await asyncio.sleep(delay)


@dataclass(frozen=True)
class SshTarget:
    name: str
    host: str
    port: int
    user: str
    key_path: Path
    known_hosts: Path

    @property
    def label(self) -> str:
        return f"{self.user}@{self.host}:{self.port} ({self.name})"

    @property
    def host_pattern(self) -> str:
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"

    @classmethod
    def from_connections(cls, connections: Connections, name: str, *, user: str = "root", key_path: Path | None = None, workspace_root: Path | None = None) -> "SshTarget":
        ep: Endpoint = connections.endpoint("ssh", name)
        key = key_path or connections.ssh_key or (workspace_root / "id_ed25519" if workspace_root else None)
        known = connections.known_hosts or (workspace_root / "known_hosts" if workspace_root else None)
        if key is None or known is None:
            raise OperationError(f"no SSH key or known_hosts file configured for {name}", hint="run `tierzero init` to create the workspace key")
        return cls(name=name, host=ep.host, port=ep.port, user=str(ep.extra.get("user", user)), key_path=Path(key), known_hosts=Path(known))


@dataclass(frozen=True)
class Result:
    command: str  # redacted
    stdout: str
    stderr: str
    exit_status: int

    @property
    def ok(self) -> bool:
        return self.exit_status == 0


class CommandFailed(OperationError):
    def __init__(self, target: SshTarget, result: Result, hint: str | None = None) -> None:
        tail = (result.stderr.strip() or result.stdout.strip()).splitlines()[-5:]
        super().__init__(
            f"`{result.command}` on {target.name} exited {result.exit_status}" + (": " + " / ".join(tail) if tail else ""),
            hint=hint,
        )
        self.result = result


class _RecordingClient(asyncssh.SSHClient):
    """Remembers the host key the server offered, for trust-on-first-use."""

    def __init__(self) -> None:
        self.server_key: asyncssh.SSHKey | None = None

    def validate_host_public_key(self, host: str, addr: tuple[str, int], port: int, key: asyncssh.SSHKey) -> bool:
        self.server_key = key
        return True


def _known_key(known_hosts: Path, pattern: str) -> bool:
    if not known_hosts.exists():
        return False
    for line in known_hosts.read_text().splitlines():
        hosts = line.split(" ", 1)[0].split(",")
        if pattern in hosts:
            return True
    return False


def _record_key(known_hosts: Path, pattern: str, key: asyncssh.SSHKey) -> None:
    known_hosts.parent.mkdir(parents=True, exist_ok=True)
    line = f"{pattern} {key.export_public_key('openssh').decode().strip()}\n"
    with known_hosts.open("a") as out:
        out.write(line)


_TRANSIENT = (OSError, asyncio.TimeoutError, asyncssh.ConnectionLost, asyncssh.ChannelOpenError)


def _transient(exc: BaseException) -> str | None:
    if isinstance(exc, asyncssh.HostKeyNotVerifiable) or isinstance(exc, asyncssh.PermissionDenied):
        return None
    if isinstance(exc, asyncssh.DisconnectError) and not isinstance(exc, asyncssh.ConnectionLost):
        return None
    if isinstance(exc, _TRANSIENT):
        return f"{type(exc).__name__}: {exc}"
    return None


@dataclass
class SshClient:
    """Commands on one host; the connection is opened on first use and reused."""

    target: SshTarget
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    redactor: Redactor = field(default_factory=Redactor)
    log: Callable[[str], None] | None = None
    on_retry: Callable[[int, str, float], None] | None = None
    connect_timeout: float = 15.0
    _conn: asyncssh.SSHClientConnection | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def _connect(self) -> asyncssh.SSHClientConnection:
        t = self.target
        if not t.key_path.exists():
            raise OperationError(f"SSH key {t.key_path} not found", hint="run `tierzero init` to create the workspace key")
        options: dict[str, Any] = dict(
            host=t.host, port=t.port, username=t.user, client_keys=[str(t.key_path)],
            agent_path=None, connect_timeout=self.connect_timeout, keepalive_interval=30,
        )
        if _known_key(t.known_hosts, t.host_pattern):
            try:
                return await asyncssh.connect(known_hosts=str(t.known_hosts), **options)
            except asyncssh.HostKeyNotVerifiable as exc:
                raise OperationError(
                    f"the SSH host key of {t.label} differs from the one recorded in {t.known_hosts}",
                    hint="if the host was reinstalled, delete its line from that file; otherwise treat it as an attack",
                ) from exc
        conn, client = await asyncssh.create_connection(_RecordingClient, known_hosts=None, **options)
        if client.server_key is not None:
            _record_key(t.known_hosts, t.host_pattern, client.server_key)
        return conn

    async def connection(self) -> asyncssh.SSHClientConnection:
        async with self._lock:
            if self._conn is not None and not self._conn.is_closed():
                return self._conn
            self._conn = await with_retries(
                f"ssh {self.target.label}", self._connect, _transient, self.policy, self.on_retry,
                give_up=lambda cause: OperationError(
                    f"cannot reach {self.target.label} over SSH: {cause}",
                    hint="check the host is up, the address and port are right, and the workspace key is authorised",
                ),
            )
            return self._conn

    async def run(self, command: str | list[str], *, check: bool = True, input: str | None = None, secrets: Iterable[str] = (), timeout: float | None = 600, hint: str | None = None) -> Result:
        """Run a command; `secrets` are masked in the log and in errors (never in what is sent)."""
        cmd = command if isinstance(command, str) else shlex.join(command)
        for s in secrets:
            self.redactor.add(s)
        shown = self.redactor.redact(cmd)

        async def once() -> asyncssh.SSHCompletedProcess:
            conn = await self.connection()
            try:
                return await asyncio.wait_for(conn.run(cmd, input=input, check=False), timeout)
            except (asyncssh.ConnectionLost, OSError):
                self._conn = None
                raise

        if self.log:
            self.log(f"ssh {self.target.name}: {shown}")
        proc = await with_retries(f"ssh {self.target.label}", once, _transient, self.policy, self.on_retry)
        out = proc.stdout if isinstance(proc.stdout, str) else (proc.stdout or b"").decode(errors="replace")
        err = proc.stderr if isinstance(proc.stderr, str) else (proc.stderr or b"").decode(errors="replace")
        result = Result(shown, self.redactor.redact(out) if secrets else out, self.redactor.redact(err), int(proc.exit_status or 0))
        if check and not result.ok:
            raise CommandFailed(self.target, result, hint)
        return result

    async def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            await self._conn.wait_closed()
            self._conn = None


def ssh_client(connections: Connections, name: str, *, user: str = "root", workspace_root: Path | None = None, key_path: Path | None = None, log: Callable[[str], None] | None = None, on_retry: Callable[[int, str, float], None] | None = None) -> SshClient:
    """The shared client for a host, cached in connections.state per event loop."""
    loop = asyncio.get_running_loop()
    cache: dict[tuple[int, str], SshClient] = connections.state.setdefault("ssh_clients", {})
    key = (id(loop), name)
    client = cache.get(key)
    if client is None:
        target = SshTarget.from_connections(connections, name, user=user, key_path=key_path, workspace_root=workspace_root)
        client = SshClient(target, policy=retry_policy(connections, "ssh"))
        cache[key] = client
    client.log = log
    client.on_retry = on_retry
    return client


async def close_all(connections: Connections) -> None:
    for client in list(connections.state.get("ssh_clients", {}).values()):
        try:
            await client.close()
        except Exception:  # noqa: BLE001 - closing is best effort
            pass
    connections.state.pop("ssh_clients", None)
