"""A Git remote branch and its clone in the workspace, through the real `git` program.

The clone (`.tierzero/git/<cluster>.git`, bare) keeps what was fetched and what tierzero
committed, so each run fetches only what is new. Commits are written with `git fast-import`
(one process for the whole tree, no work tree) and published with one `git push` of one
commit to one branch, never forced: the remote either moves to the new commit or keeps the
old one (git-receive-pack updates a ref only after the whole pack arrived and was checked;
git-push(1), git-receive-pack(1) git 2.39).

Transports are git's own: a local path or file://, ssh:// (OpenSSH, host key checked against
a pinned known_hosts, `StrictHostKeyChecking=yes`), https:// (a token handed to git by a
credential helper reading the environment, never in argv or the URL). `git` never prompts
(`GIT_TERMINAL_PROMPT=0`, `BatchMode=yes`). Every failure is a tierzero error naming the
remote, with git's own last lines (secrets masked) and a remedy (`tierzero.adapters.errors`:
refused credentials are an `AuthenticationFailed`, an unreachable host an `Unreachable`).

Each git run that talks to the remote (ls-remote, fetch, push, ssh-keyscan) is reported as a
call (`tierzero.adapters.calls`, via "git"); reads of the local clone are not.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from tierzero.adapters import calls
from tierzero.adapters.redact import process_redactor
from tierzero.adapters.errors import AuthenticationFailed, CallFailed, Unreachable
from tierzero.errors import InputError, OperationError

COMMITTER = ("tierzero", "tierzero@localhost")
STAGING_REF = "refs/tierzero/staging"
_SCP_LIKE = re.compile(r"^(?:(?P<user>[^@/]+)@)?(?P<host>[^:/]+):(?P<path>[^/].*)$")
# Variables that would point git at another repository or identity than the one named here.
_REPO_ENV = frozenset({"GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES",
                       "GIT_NAMESPACE", "GIT_COMMON_DIR", "GIT_CEILING_DIRECTORIES", "GIT_SSH", "GIT_SSH_COMMAND", "GIT_ASKPASS"})
_CRED_HELPER = '!f() { test "$1" = get && printf "username=%s\\npassword=%s\\n" "$TIERZERO_GIT_USERNAME" "$TIERZERO_GIT_PASSWORD"; }; f'


class RemoteMoved(OperationError):
    """The branch moved between the fetch and the push; nothing was pushed."""


@dataclass(frozen=True)
class GitLocation:
    """A remote as git addresses it. `scheme` is ssh, https, http or file."""

    scheme: str
    path: str
    host: str = ""
    port: int | None = None
    user: str | None = None

    @classmethod
    def parse(cls, url: str, base_dir: Path | None = None) -> GitLocation:
        """ssh://[user@]host[:port]/path, scp-like user@host:path, http(s)://host[:port]/path,
        file:///path or a local path (relative to `base_dir`). InputError for anything else."""
        if "://" in url:
            parts = urlsplit(url)
            scheme = parts.scheme.lower()
            if scheme not in ("ssh", "https", "http", "file"):
                raise InputError(f"unsupported Git URL scheme {scheme!r} in {url}", hint="use ssh://, https://, file:// or a local path")
            if scheme == "file":
                return cls("file", parts.path)
            if parts.password:
                raise InputError(f"the Git URL {parts.scheme}://{parts.hostname}{parts.path} carries a password",
                                 hint="remove it from the URL and reference the token with gitops.token (env:NAME, file:PATH or sops:PATH#key)")
            if not parts.hostname:
                raise InputError(f"the Git URL {url} names no host")
            return cls(scheme, parts.path, parts.hostname, parts.port, parts.username)
        match = _SCP_LIKE.match(url)
        if match and not url.startswith(("/", ".", "~")):
            return cls("ssh", "/" + match["path"], match["host"], None, match["user"])
        path = Path(os.path.expanduser(url))
        if not path.is_absolute():
            path = (base_dir or Path.cwd()) / path
        return cls("file", str(path))

    @property
    def url(self) -> str:
        if self.scheme == "file":
            return self.path
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port else ""
        return f"{self.scheme}://{user}{self.host}{port}{self.path}"

    @property
    def known_hosts_name(self) -> str:
        """The name an SSH host key is pinned under: `host`, or `[host]:port` off port 22 (sshd(8), SSH_KNOWN_HOSTS FILE FORMAT)."""
        return self.host if self.port in (None, 22) else f"[{self.host}]:{self.port}"


@dataclass(frozen=True)
class GitAuth:
    """How to authenticate: an SSH identity and the pinned host keys (the key is checked under
    `host_key_alias`, the name it was pinned as), or HTTPS username and token, or a CA bundle."""

    identity: Path | None = None
    known_hosts: Path | None = None
    host_key_alias: str | None = None
    username: str | None = None
    token: str | None = field(default=None, repr=False)
    ca_file: str | None = None


@dataclass(frozen=True)
class CommitInfo:
    sha: str
    author: str
    subject: str
    tierzero_cluster: str  # the Tierzero-Cluster trailer, "" when absent

    @property
    def short(self) -> str:
        return self.sha[:12]


def blob_id(data: bytes) -> str:
    """The object id git gives a file's bytes (SHA-1 object format; gitformat-object)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _last_lines(text: str, count: int = 4) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip() and not ln.startswith("hint:")]
    return process_redactor().redact(" / ".join(lines[-count:]))


class GitRemote:
    """One branch of a remote repository, with its bare clone at `clone_dir`. Blocking calls."""

    def __init__(self, clone_dir: Path, location: GitLocation, branch: str, auth: GitAuth = GitAuth(), *,
                 shown_url: str | None = None, timeout: float = 300.0) -> None:
        self.clone_dir, self.location, self.branch, self.auth = clone_dir, location, branch, auth
        self.shown_url = shown_url or location.url  # the URL the user wrote, for messages
        self.timeout = timeout

    # -- running git

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _REPO_ENV and not k.startswith(("GIT_AUTHOR_", "GIT_COMMITTER_", "GIT_CONFIG"))}
        env.update(GIT_TERMINAL_PROMPT="0", LC_ALL="C", GIT_AUTHOR_NAME=COMMITTER[0], GIT_AUTHOR_EMAIL=COMMITTER[1],
                   GIT_COMMITTER_NAME=COMMITTER[0], GIT_COMMITTER_EMAIL=COMMITTER[1])
        auth = self.auth
        if self.location.scheme == "ssh":
            ssh = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=30"]
            if auth.known_hosts is not None:
                ssh += ["-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={auth.known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null"]
            if auth.host_key_alias:
                ssh += ["-o", f"HostKeyAlias={auth.host_key_alias}"]
            if auth.identity is not None:
                ssh += ["-i", str(auth.identity), "-o", "IdentitiesOnly=yes"]
            env["GIT_SSH_COMMAND"] = shlex.join(ssh)
        if auth.ca_file:
            env["GIT_SSL_CAINFO"] = auth.ca_file  # the variable wins over http.sslCAInfo (git-config(1))
        if auth.token is not None:
            env["TIERZERO_GIT_USERNAME"] = auth.username or "git"
            env["TIERZERO_GIT_PASSWORD"] = auth.token
        return env

    def _config(self) -> list[str]:
        out = ["-c", "core.hooksPath=/dev/null"]
        if self.auth.token is not None:
            out += ["-c", "credential.helper=", "-c", f"credential.helper={_CRED_HELPER}"]
        return out

    def _git(self, *args: str, data: bytes | None = None, what: str = "", check: bool = True,
             remote: bool = False) -> subprocess.CompletedProcess[bytes]:
        cmd = ["git", *self._config(), "--git-dir", str(self.clone_dir), *args]
        if remote:  # talks to the remote: a request to the outside
            calls.sent("git", self.location.host or self.location.url, " ".join(("git", *args)))
        try:
            proc = subprocess.run(cmd, input=data, capture_output=True, env=self._env(), timeout=self.timeout)
        except FileNotFoundError:
            raise OperationError("the `git` program was not found", hint="install git (Debian: apt-get install git) and put it on PATH") from None
        except subprocess.TimeoutExpired:
            raise OperationError(f"git {what or args[0]} against {self.shown_url} gave no answer within {self.timeout:g}s",
                                 hint="check that this machine reaches the Git host, then run again") from None
        if check and proc.returncode != 0:
            raise self._error(what or args[0], proc.stderr.decode(errors="replace"))
        return proc

    def _error(self, what: str, stderr: str) -> CallFailed:
        message = f"git {what} {self.shown_url} failed: {_last_lines(stderr)}"
        low = stderr.lower()
        if "host key verification failed" in low or "remote host identification has changed" in low:
            return CallFailed(message, hint=f"the SSH host key of {self.location.host} is not the one pinned in {self.auth.known_hosts}: if "
                                            "the host really changed its key, check the new fingerprint with the host's operator, then "
                                            "remove the old line from that file")
        if "permission denied" in low or "authentication failed" in low or "could not read username" in low or "403" in low:
            return AuthenticationFailed(message, hint="the remote refused the credentials: for ssh://, check that the key may write to this "
                                                      "repository; for https://, set gitops.token to a token that may push "
                                                      "(env:NAME, file:PATH or sops:PATH#key)")
        if "could not resolve host" in low or "connection refused" in low or "timed out" in low:
            return Unreachable(message, hint="the Git host is not reachable from this machine: check DNS, proxy and firewall")
        return CallFailed(message, hint="check the repository URL, that it exists, and that this machine may reach it")

    # -- the clone

    def ensure_clone(self) -> None:
        if (self.clone_dir / "HEAD").is_file():
            return
        self.clone_dir.parent.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(["git", "init", "--quiet", "--bare", str(self.clone_dir)], capture_output=True, env=self._env())
        if proc.returncode != 0:
            raise OperationError(f"cannot create the Git clone at {self.clone_dir}: {_last_lines(proc.stderr.decode(errors='replace'))}")

    def head(self) -> str | None:
        """The remote branch's commit id, or None when the branch does not exist."""
        self.ensure_clone()
        out = self._git("ls-remote", self.location.url, f"refs/heads/{self.branch}", what="ls-remote", remote=True).stdout.decode()
        for line in out.splitlines():
            sha, _, ref = line.partition("\t")
            if ref == f"refs/heads/{self.branch}":
                return sha
        return None

    def fetch(self) -> str | None:
        """Bring the remote branch into the clone; its commit id, or None when it does not exist."""
        head = self.head()
        if head is None:
            return None
        self._git("fetch", "--quiet", "--no-tags", self.location.url, f"+refs/heads/{self.branch}:refs/remotes/origin/{self.branch}", what="fetch",
                  remote=True)
        return head

    def history(self, commit: str, limit: int = 200) -> list[CommitInfo]:
        """`commit` and its first-parent ancestors, newest first, at most `limit`."""
        fmt = "%H%x1f%an <%ae>%x1f%s%x1f%(trailers:key=Tierzero-Cluster,valueonly,separator=%x2c)%x1e"
        out = self._git("log", "--first-parent", f"-n{limit}", f"--format={fmt}", commit, what="log").stdout.decode(errors="replace")
        commits = []
        for record in out.split("\x1e"):
            fields = record.strip("\n").split("\x1f")
            if len(fields) == 4:
                commits.append(CommitInfo(fields[0], fields[1], fields[2], fields[3].strip()))
        return commits

    def files(self, commit: str | None) -> dict[str, str]:
        """Path -> blob id of every file in a commit ({} for None)."""
        if commit is None:
            return {}
        out = self._git("ls-tree", "-r", "-z", "--full-tree", commit, what="ls-tree").stdout.decode()
        result = {}
        for entry in out.split("\0"):
            if entry:
                meta, _, path = entry.partition("\t")
                result[path] = meta.split()[2]
        return result

    def read(self, commit: str, path: str) -> bytes:
        return self._git("cat-file", "blob", f"{commit}:{path}", what="cat-file").stdout

    def contains(self, commit: str, ancestor: str) -> bool:
        """Whether `ancestor` is `commit` or one of its ancestors (both in the clone)."""
        return self._git("merge-base", "--is-ancestor", ancestor, commit, what="merge-base", check=False).returncode == 0

    def tree_of(self, commit: str) -> str:
        return self._git("rev-parse", f"{commit}^{{tree}}", what="rev-parse").stdout.decode().strip()

    def commit(self, tree: Mapping[str, bytes], parent: str | None, message: str, keep: Mapping[str, str] | None = None) -> str:
        """Write a commit whose content is exactly `tree` (path -> bytes) plus `keep` (path ->
        blob id of a file already in the clone) on top of `parent`."""
        self.ensure_clone()
        stamp = int(time.time())
        msg = message.encode()
        stream = bytearray()
        stream += f"reset {STAGING_REF}\ncommit {STAGING_REF}\n".encode()
        stream += f"committer {COMMITTER[0]} <{COMMITTER[1]}> {stamp} +0000\n".encode()
        stream += b"data %d\n" % len(msg) + msg + b"\n"
        if parent:
            stream += f"from {parent}\n".encode()
        stream += b"deleteall\n"
        for path in sorted({*tree, *(keep or {})}):
            if not path or "\n" in path or path.startswith(("/", " ")) or path.endswith(" ") or '"' in path:
                raise OperationError(f"cannot commit a file named {path!r}", hint="rendered paths are plain; rename the file in the remote")
            if path in tree:
                data = tree[path]
                stream += f"M 100644 inline {path}\n".encode() + b"data %d\n" % len(data) + data + b"\n"
            else:
                stream += f"M 100644 {(keep or {})[path]} {path}\n".encode()
        stream += b"done\n"
        self._git("fast-import", "--quiet", "--done", "--force", data=bytes(stream), what="fast-import")
        return self._git("rev-parse", STAGING_REF, what="rev-parse").stdout.decode().strip()

    def push(self, commit: str) -> None:
        """Move the remote branch to `commit`, fast-forward only (git refuses anything else)."""
        proc = self._git("push", "--porcelain", self.location.url, f"{commit}:refs/heads/{self.branch}", what="push", check=False,
                         remote=True)
        if proc.returncode == 0:
            return
        text = proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")
        # Someone else's update won: refused as not a fast-forward, or (both creating the branch
        # at once) receive-pack's "cannot lock ref ... reference already exists".
        if "[rejected]" in text or "non-fast-forward" in text or "fetch first" in text or "cannot lock ref" in text:
            raise RemoteMoved(f"the branch {self.branch} of {self.shown_url} moved while tierzero was pushing; nothing was pushed",
                                 hint="run the deploy again: it fetches the new commits and checks them first")
        raise self._error("push", text)


def pin_host_key(location: GitLocation, known_hosts: Path, *, connect: tuple[str, int] | None = None, alias: str | None = None,
                 timeout: float = 15.0) -> tuple[list[str], bool]:
    """The host keys pinned for `location`'s host in `known_hosts`, scanning them on first
    contact (`ssh-keyscan`, trust on first use). -> (fingerprint lines like "ED25519
    SHA256:...", whether they were pinned just now). `connect` is where the host really
    answers (the sandbox's loopback port); the keys are pinned under `alias` (default the
    host's known_hosts name)."""
    name = alias or location.known_hosts_name
    lines = _pinned(known_hosts, name)
    fresh = False
    if not lines:
        host, port = connect or (location.host, location.port or 22)
        calls.sent("git", location.host, f"ssh-keyscan -p {port} {host}")
        try:
            proc = subprocess.run(["ssh-keyscan", "-T", str(int(timeout)), "-p", str(port), "-t", "ed25519,ecdsa,rsa", host],
                                  capture_output=True, timeout=timeout + 10)
        except FileNotFoundError:
            raise OperationError("the `ssh-keyscan` program was not found", hint="install the OpenSSH client (Debian: apt-get install openssh-client)") from None
        except subprocess.TimeoutExpired:
            proc = None
        scanned = [ln.split(None, 1)[1] for ln in (proc.stdout.decode().splitlines() if proc else [])
                   if ln.strip() and not ln.startswith("#") and len(ln.split()) >= 3]
        if not scanned:
            raise OperationError(f"no SSH host key could be read from {location.host} (port {port})",
                                 hint="check that this machine reaches the Git host over SSH (DNS, firewall), then run again")
        lines = [f"{name} {key}" for key in sorted(scanned)]
        known_hosts.parent.mkdir(parents=True, exist_ok=True)
        with known_hosts.open("a") as handle:
            handle.write("".join(line + "\n" for line in lines))
        fresh = True
    return _fingerprints(lines), fresh


def _pinned(known_hosts: Path, name: str) -> list[str]:
    try:
        text = known_hosts.read_text()
    except FileNotFoundError:
        return []
    return [ln for ln in text.splitlines() if ln.split(" ", 1)[0] == name and len(ln.split()) >= 3]


def pinned_lines(known_hosts: Path, location: GitLocation, alias: str | None = None) -> list[str]:
    """The known_hosts lines pinned for the host (what Flux's Secret carries as `known_hosts`)."""
    return _pinned(known_hosts, alias or location.known_hosts_name)


def _fingerprints(lines: list[str]) -> list[str]:
    import base64

    out = []
    for line in lines:
        _, kind, blob = line.split()[:3]
        digest = base64.b64encode(hashlib.sha256(base64.b64decode(blob)).digest()).decode().rstrip("=")
        label = {"ssh-ed25519": "ED25519", "ssh-rsa": "RSA"}.get(kind, "ECDSA" if kind.startswith("ecdsa") else kind)
        out.append(f"{label} SHA256:{digest}")
    return out
