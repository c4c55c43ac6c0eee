"""A Git host on loopback (`STANDIN`, "git-forge"): the repositories the spec's clusters sync
from, served by the real git programs over SSH (`ssh.py`) and smart HTTPS (`http.py`), with
the deploy-key API of GitHub and Gitea.

It starts as a Git host is after the user created the repository and nothing else: each
spec repository exists, empty, its HEAD on `main` (GitHub's default branch for a new
repository; docs.github.com, "About the default branch"). The user's account may push: its
SSH key is the workspace key, its token a random one kept in the world; the run gets both
through Connections, with the forge's API as if the spec carried `gitops.forge` (say
`SandboxOptions(git_forge_api=False)` to play a user who adds deploy keys by hand). Deploy keys
registered through the API may read (and, unless read-only, push to) their repository only.

The host name in the spec's URL (github.com) maps to loopback ports: `resolve(url)` is the
sandbox's DNS for Git, used by the push (through Connections) and by the Flux stand-in. The
SSH host key is kept in the sandbox state directory, so a key pinned once stays valid after a
world wipe, as a real host's does. Repositories live in the world directory (wiped with it);
the deploy keys and the token in the world document "git-forge".
"""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import asyncssh

from tierzero.adapters.connections import Endpoint
from tierzero.adapters.git import GitLocation
from tierzero.sandbox.context import Handle, SandboxContext, StandIn, Stop
from tierzero.sandbox.git_forge import http, ssh

DOCUMENT = "git-forge"


@dataclass
class Repo:
    id: str  # "<host>/<owner>/<name>"
    path: Path  # the bare repository


@dataclass
class DeployKey:
    id: int
    title: str
    key: str  # "<type> <base64>"
    read_only: bool
    created_at: str = field(default_factory=lambda: datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))


@dataclass(frozen=True)
class Resolved:
    """Where git reaches a hosted repository on loopback, and how to trust it."""

    url: str
    host_key_alias: str | None = None  # ssh: the name the host key is pinned under
    ca_file: str | None = None  # https: the throwaway certificate


def _repo_key(path: str) -> str:
    clean = path.strip().strip("/").removesuffix("/")
    return clean[:-4] if clean.endswith(".git") else clean


class GitHost:
    """One host name (github.com) with its SSH and HTTPS listeners."""

    def __init__(self, forge: GitForge, name: str) -> None:
        self.forge, self.name = forge, name
        self.ssh_port = 0
        self.http: Any = None
        self._ssh: Any = None

    def repo(self, path: str) -> Repo | None:
        """The hosted repository a request path names ("/o/r.git", "o/r", "'/o/r.git'"), or None."""
        key = _repo_key(path)
        if ".." in key.split("/") or key.count("/") != 1:
            return None
        return self.forge.repos.get(f"{self.name}/{key}")


class GitForge:
    def __init__(self, root: Path, tls_dir: Path, host_key: asyncssh.SSHKey, account_keys: list[str], document: Any = None) -> None:
        self.root, self.tls_dir, self.host_key = root, tls_dir, host_key
        self.account_keys = {" ".join(k.split()[:2]) for k in account_keys if k.strip()}
        self.document = document
        self.lock = threading.RLock()
        self.hosts: dict[str, GitHost] = {}
        self.repos: dict[str, Repo] = {}
        self.keys: dict[str, list[DeployKey]] = {}
        self.next_id = 1
        self.token = secrets.token_hex(20)
        self.pushes = 0
        self.on_push: list[Callable[[Repo], None]] = []
        saved = document.load() if document is not None else None
        if saved:
            self.token = saved.get("token", self.token)
            self.next_id = int(saved.get("next_id", 1))
            self.keys = {rid: [DeployKey(**k) for k in ks] for rid, ks in saved.get("deploy_keys", {}).items()}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="git-forge", daemon=True)
        self._thread.start()
        self._save()

    # -- lifecycle

    def _save(self) -> None:
        if self.document is not None:
            with self.lock:
                self.document.save({"token": self.token, "next_id": self.next_id,
                                    "deploy_keys": {rid: [asdict(k) for k in ks] for rid, ks in sorted(self.keys.items())}})

    def host(self, name: str) -> GitHost:
        if name not in self.hosts:
            host = GitHost(self, name)
            host._ssh = asyncio.run_coroutine_threadsafe(ssh.listen(host, self.host_key), self._loop).result(30)
            host.ssh_port = host._ssh.sockets[0].getsockname()[1]
            host.http = http.ForgeHttpServer(host, self.tls_dir)
            host.http.start_serving()
            self.hosts[name] = host
        return self.hosts[name]

    def stop(self) -> None:
        for host in self.hosts.values():
            host.http.stop()
            host._ssh.close()
            asyncio.run_coroutine_threadsafe(host._ssh.wait_closed(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def add_repository(self, url: str) -> Repo:
        """Host the repository `url` names, as the user created it: empty, HEAD on main."""
        loc = GitLocation.parse(url)
        if loc.scheme not in ("ssh", "https", "http"):
            raise ValueError(f"the forge hosts remote repositories, not {url}")
        key = _repo_key(loc.path)
        rid = f"{loc.host}/{key}"
        with self.lock:
            if rid not in self.repos:
                path = self.root / loc.host / f"{key}.git"
                if not (path / "HEAD").is_file():
                    path.parent.mkdir(parents=True, exist_ok=True)
                    subprocess.run(["git", "init", "--quiet", "--bare", "--initial-branch=main", str(path)], check=True, capture_output=True)
                self.repos[rid] = Repo(rid, path)
            self.host(loc.host)
            return self.repos[rid]

    # -- the sandbox's DNS for Git

    def resolve(self, url: str) -> Resolved | None:
        try:
            loc = GitLocation.parse(url)
        except Exception:  # noqa: BLE001 - not a URL the forge could host
            return None
        host = self.hosts.get(loc.host)
        if host is None or host.repo(loc.path) is None:
            return None
        if loc.scheme == "ssh":
            return Resolved(f"ssh://{loc.user or 'git'}@127.0.0.1:{host.ssh_port}{loc.path}", host_key_alias=loc.known_hosts_name)
        return Resolved(f"https://127.0.0.1:{host.http.port}{loc.path}", ca_file=host.http.ca_file)

    # -- access

    def knows_key(self, key: str) -> bool:
        with self.lock:
            return key in self.account_keys or any(k.key == key for ks in self.keys.values() for k in ks)

    def ssh_access(self, key: str | None, repo: Repo, *, write: bool) -> str:
        """"ok", "read only" (a read-only deploy key pushing) or "not found" (no access)."""
        with self.lock:
            if key is not None and key in self.account_keys:
                return "ok"
            for deploy in self.keys.get(repo.id, []):
                if deploy.key == key:
                    return "read only" if write and deploy.read_only else "ok"
            return "not found"

    def token_ok(self, token: str | None) -> bool:
        return token is not None and secrets.compare_digest(token, self.token)

    def pushed(self, repo: Repo) -> None:
        self.pushes += 1
        for listener in list(self.on_push):
            listener(repo)

    # -- deploy keys

    def deploy_keys(self, repo: Repo) -> list[DeployKey]:
        with self.lock:
            return list(self.keys.get(repo.id, []))

    def add_deploy_key(self, repo: Repo, title: str, key: str, read_only: bool, *, gitea: bool) -> tuple[DeployKey, str | None]:
        """Register a deploy key: (the key, None), or (a placeholder, the 422 message). See `http` for the rules."""
        parts = key.split()
        if len(parts) < 2 or not parts[0].startswith(("ssh-", "ecdsa-", "sk-")):
            return DeployKey(0, title, key, read_only), "key is invalid. It must begin with 'ssh-ed25519', 'ssh-rsa', 'ecdsa-sha2-nistp256', ..."
        text = " ".join(parts[:2])
        with self.lock:
            mine = self.keys.setdefault(repo.id, [])
            if gitea:
                if text in self.account_keys:  # an account's own key (PublicKey of another type) first
                    return DeployKey(0, title, text, read_only), "Key content has been used as non-deploy key"
                if any(k.key == text or k.title == title for k in mine):
                    return DeployKey(0, title, text, read_only), "This key has already been added to this repository"
            elif text in self.account_keys or any(k.key == text for ks in self.keys.values() for k in ks):
                return DeployKey(0, title, text, read_only), "key is already in use"
            created = DeployKey(self.next_id, title, text, read_only)
            self.next_id += 1
            mine.append(created)
            self._save()
            return created, None

    def remove_deploy_key(self, repo: Repo, key_id: int) -> bool:
        with self.lock:
            mine = self.keys.get(repo.id, [])
            kept = [k for k in mine if k.id != key_id]
            if len(kept) == len(mine):
                return False
            self.keys[repo.id] = kept
            self._save()
            return True

    def key_document(self, repo: Repo, key: DeployKey, gitea: bool) -> dict[str, Any]:
        doc: dict[str, Any] = {"id": key.id, "key": key.key, "title": key.title, "read_only": key.read_only, "created_at": key.created_at}
        if gitea:
            doc.update(key_id=key.id, fingerprint="", url=f"/api/v1/repos/{repo.id.split('/', 1)[1]}/keys/{key.id}")
        else:
            doc.update(verified=True, url=f"/repos/{repo.id.split('/', 1)[1]}/keys/{key.id}", added_by="sandbox-user", last_used=None, enabled=True)
        return doc


SERVER: Handle[GitForge] = Handle("git-forge")


def _start(box: SandboxContext) -> Stop:
    from tierzero.adapters.git import GitLocation as Location
    from tierzero.workspace.keys import create_ssh_keypair

    ws = box.workspace
    if not ws.ssh_public_key.exists():
        create_ssh_keypair(ws)
    key_file = box.host_key_file("git_forge")
    if box.world is not None:
        root, document = box.world.directory / "git-forge", box.world.file(DOCUMENT)
    else:
        root, document = Path(box.state_dir) / f"git-forge-{secrets.token_hex(4)}", None
    forge = box.put(SERVER, GitForge(root, Path(box.state_dir) / "git-tls", asyncssh.read_private_key(str(key_file)),
                                     [ws.ssh_public_key.read_text()], document))
    for cluster in box.spec.clusters:
        if cluster.gitops is None:
            continue
        forge.add_repository(cluster.gitops.repo_url)
        where = forge.resolve(cluster.gitops.repo_url)
        assert where is not None
        loc = Location.parse(cluster.gitops.repo_url)
        host = forge.hosts[loc.host]
        extra = {"url": where.url, "host_key_alias": where.host_key_alias, "identity": str(ws.ssh_key), "token": forge.token}
        port = host.ssh_port if loc.scheme == "ssh" else host.http.port
        box.connections.add("git", cluster.name, Endpoint("127.0.0.1", port, scheme=loc.scheme, verify=host.http.ca_file if loc.scheme != "ssh" else True,
                                                         extra=extra))
        if box.options.git_forge_api:
            kind = "github" if loc.host == "github.com" else "gitea"
            api = f"https://127.0.0.1:{host.http.port}" + ("" if kind == "github" else "/api/v1")
            box.connections.add("forge", cluster.name, Endpoint("127.0.0.1", host.http.port, scheme="https", verify=host.http.ca_file,
                                                               extra={"kind": kind, "api_url": api, "token": forge.token}))
    return forge.stop


STANDIN = StandIn("git-forge", _start)
