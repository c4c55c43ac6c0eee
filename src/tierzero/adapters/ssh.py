"""Run commands on the Proxmox hosts (and the quorum witness) over SSH with asyncssh.

Targets come from `Connections.endpoint("ssh", name)`; the key is the workspace key. Host keys are
trusted on first use and recorded in `.tierzero/known_hosts`; a changed key is refused. Connection
errors are retried with backoff and jitter until a deadline; a command's own failure is not retried
here (the caller decides). Secrets are masked in everything that reaches a log or an error.
"""

from __future__ import annotations

import asyncio
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

from tierzero.adapters import calls
from tierzero.adapters.connections import ClientCache, Connections, Endpoint, RetryKind
from tierzero.adapters.errors import from_asyncssh
from tierzero.adapters.redact import Redactor, process_redactor
from tierzero.adapters.retry import Policy, RetryExhausted, retry_async
from tierzero.errors import OperationError

if TYPE_CHECKING:
    import asyncssh

# asyncssh is imported where a connection is made, not with this module: the phases import it for
# `retry_policy`, and importing asyncssh probes for liboqs (ldconfig, gcc and ld processes), which a
# run that opens no SSH connection (a no-op re-run) should not pay for.


def retry_policy(connections: Connections, kind: RetryKind) -> Policy:
    """The retry policy for a kind of call (see `Connections.retry`; a sandbox or a test shortens it)."""
    return connections.retry.policy(kind)


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
    def from_connections(cls, connections: Connections, name: str, *, user: str = "root", key_path: Path | None = None, workspace_root: Path | None = None,
                         login: str | None = None) -> "SshTarget":
        ep: Endpoint = connections.endpoint("ssh", name)
        key = key_path or connections.ssh_key or (workspace_root / "id_ed25519" if workspace_root else None)
        known = connections.known_hosts or (workspace_root / "known_hosts" if workspace_root else None)
        if key is None or known is None:
            raise OperationError(f"no SSH key or known_hosts file configured for {name}", hint="run `tierzero init` to create the workspace key")
        return cls(name=name, host=ep.host, port=ep.port, user=login or str(ep.extra.get("user", user)), key_path=Path(key), known_hosts=Path(known))


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


def _transient(exc: BaseException) -> bool:
    import asyncssh

    if isinstance(exc, (asyncssh.HostKeyNotVerifiable, asyncssh.PermissionDenied, OperationError)):
        return False
    if isinstance(exc, asyncssh.DisconnectError) and not isinstance(exc, asyncssh.ConnectionLost):
        return False
    return isinstance(exc, (OSError, asyncio.TimeoutError, asyncssh.ConnectionLost, asyncssh.ChannelOpenError))


@dataclass
class SshClient:
    """Commands on one host; the connection is opened on first use and reused."""

    target: SshTarget
    policy: Policy = field(default_factory=Policy)
    redactor: Redactor = field(default_factory=process_redactor)
    log: Callable[[str], None] | None = None
    on_retry: Callable[[int, str, float], None] | None = None
    connect_timeout: float = 15.0
    _conn: asyncssh.SSHClientConnection | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def _connect(self) -> asyncssh.SSHClientConnection:
        import asyncssh

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
        # First contact: accept the key the server offers and record it (trust on first use).
        conn = await asyncssh.connect(known_hosts=None, **options)
        key = conn.get_server_host_key()
        if key is not None:
            _record_key(t.known_hosts, t.host_pattern, key)
        return conn

    async def connection(self, on_retry: Callable[[int, str, float], None] | None = None) -> asyncssh.SSHClientConnection:
        import asyncssh

        async with self._lock:
            if self._conn is not None and not self._conn.is_closed():
                return self._conn
            try:
                self._conn = await retry_async(
                    self._connect, policy=self.policy, classify=_transient, on_retry=on_retry or self.on_retry, what=f"ssh {self.target.label}"
                )
            except RetryExhausted as exc:
                raise OperationError(
                    f"cannot reach {self.target.label} over SSH: {exc.message}",
                    hint="check the host is up, the address and port are right, and the workspace key is authorised",
                ) from exc
            except (asyncssh.Error, OSError) as exc:  # refused key, changed host key, a disconnect that is no drop
                raise from_asyncssh(exc, f"ssh {self.target.label}") from exc
            return self._conn

    async def run(self, command: str | list[str], *, check: bool = True, input: str | None = None, secrets: Iterable[str] = (), timeout: float | None = 600, hint: str | None = None,
                  log: Callable[[str], None] | None = None, on_retry: Callable[[int, str, float], None] | None = None) -> Result:
        """Run a command; `secrets` are masked in the log and in errors (never in what is sent)."""
        import asyncssh

        log = log or self.log
        on_retry = on_retry or self.on_retry
        cmd = command if isinstance(command, str) else shlex.join(command)
        for s in secrets:
            self.redactor.add(s)
        shown = self.redactor.redact(cmd)

        async def once() -> asyncssh.SSHCompletedProcess:
            conn = await self.connection(on_retry)
            calls.sent("ssh", self.target.name, shown)
            try:
                return await asyncio.wait_for(conn.run(cmd, input=input, check=False), timeout)
            except (asyncssh.ConnectionLost, OSError):
                self._conn = None
                raise

        if log:
            log(f"ssh {self.target.name}: {shown}")
        try:
            proc = await retry_async(once, policy=self.policy, classify=_transient, on_retry=on_retry, what=f"ssh {self.target.label}: {shown}")
        except (asyncssh.Error, OSError) as exc:
            raise from_asyncssh(exc, f"ssh {self.target.label}: {shown}") from exc
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


@dataclass
class BoundSsh:
    """A shared SshClient seen by one step: its log and retry hooks, the shared connection."""

    client: SshClient
    log: Callable[[str], None] | None = None
    on_retry: Callable[[int, str, float], None] | None = None

    @property
    def target(self) -> SshTarget:
        return self.client.target

    @property
    def redactor(self) -> Redactor:
        return self.client.redactor

    async def run(self, command: str | list[str], **kwargs: Any) -> Result:
        kwargs.setdefault("log", self.log)
        kwargs.setdefault("on_retry", self.on_retry)
        return await self.client.run(command, **kwargs)


def ssh_client(connections: Connections, name: str, *, user: str = "root", workspace_root: Path | None = None, key_path: Path | None = None, log: Callable[[str], None] | None = None, on_retry: Callable[[int, str, float], None] | None = None,
               login: str | None = None) -> BoundSsh:
    """The shared client for a host (one per Connections, event loop, user and key), bound to the
    caller's log and retry hooks. `login` logs in as that user whatever the endpoint names (a cloud
    image's default user, before root may log in)."""
    target = SshTarget.from_connections(connections, name, user=user, key_path=key_path, workspace_root=workspace_root, login=login)
    # Keyed by the whole target (user, key, known_hosts too): a caller asking for another login or
    # key never gets a connection authenticated as someone else.
    key = (id(asyncio.get_running_loop()), target)
    client = _CLIENTS.get(connections, key)
    if client is None:
        client = _CLIENTS.put(connections, key, SshClient(target, policy=retry_policy(connections, "ssh")))
    return BoundSsh(client, log, on_retry)


_CLIENTS: ClientCache[tuple[int, SshTarget], SshClient] = ClientCache()


async def forget(connections: Connections, name: str, login: str | None = None) -> None:
    """Close the shared clients of a host (after its reboot: the next use reconnects); `login`
    limits it to the clients logged in as that user."""
    loop = id(asyncio.get_running_loop())
    for (loop_id, target), client in _CLIENTS.items(connections):
        if loop_id != loop or target.name != name or (login is not None and target.user != login):
            continue
        try:
            await client.close()
        except Exception:  # noqa: BLE001 - the connection is already gone with the reboot
            pass


async def close_all(connections: Connections) -> None:
    for client in _CLIENTS.pop_all(connections):
        try:
            await client.close()
        except Exception:  # noqa: BLE001 - closing is best effort
            pass
