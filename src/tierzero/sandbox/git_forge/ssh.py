"""Git over SSH for the forge stand-in: asyncssh accepts the connection, the real
`git-upload-pack` / `git-receive-pack` serve it (what GitHub, Gitea and plain sshd + git-shell
all do: the client runs `ssh host git-upload-pack '<path>'`; git-shell(1), git 2.39).

Rules, each as the real hosts behave:
- public-key authentication only, as user `git` (GitHub: "git@github.com"; docs.github.com,
  "Testing your SSH connection"); password and keyboard-interactive are refused
- a command other than the three git services is refused, exit 128, with git-shell's
  "fatal: unrecognized command '<command>'" (git shell.c, git 2.39)
- a repository the key may not read is "ERROR: Repository not found." (GitHub hides
  repositories from keys without access; same wording for a missing one)
- a read-only deploy key that runs git-receive-pack gets "ERROR: The key you are
  authenticating with has been marked as read only." (GitHub; user reports e.g.
  greenkeeperio/greenkeeper-lockfile issue 103)
- protocol v2 is honoured through the GIT_PROTOCOL environment variable that git's OpenSSH
  wrapper sends (`SendEnv GIT_PROTOCOL`; gitprotocol-v2(5))
"""

from __future__ import annotations

import asyncio
import os
import shlex
from typing import Any

import asyncssh

GitHost = Any  # tierzero.sandbox.git_forge.GitHost (not imported: that package starts this module)

SERVICES = ("git-upload-pack", "git-receive-pack", "git-upload-archive")


class _Connection(asyncssh.SSHServer):
    def __init__(self, host: GitHost) -> None:
        self.host = host
        self.key: str | None = None  # "type base64" of the key that authenticated

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return False

    def kbdint_auth_supported(self) -> bool:
        return False

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        if username != "git":
            return False
        text = " ".join(key.export_public_key("openssh").decode().split()[:2])
        if self.host.forge.knows_key(text):
            self.key = text
            return True
        return False


async def _serve(host: GitHost, process: asyncssh.SSHServerProcess[bytes]) -> None:
    conn = process.get_extra_info("connection")
    owner = conn.get_owner() if conn is not None else None
    key = getattr(owner, "key", None)
    try:
        argv = shlex.split(process.command or "")
    except ValueError:
        argv = []
    if len(argv) != 2 or argv[0] not in SERVICES:
        process.stderr.write(f"fatal: unrecognized command '{process.command or ''}'\n".encode())
        process.exit(128)
        return
    write = argv[0] == "git-receive-pack"
    repo = host.repo(argv[1])
    verdict = host.forge.ssh_access(key, repo, write=write) if repo is not None else "not found"
    if verdict != "ok":
        message = "ERROR: The key you are authenticating with has been marked as read only." if verdict == "read only" else "ERROR: Repository not found."
        process.stderr.write(message.encode() + b"\n")
        process.exit(1)
        return
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(host.forge.root)}
    if "GIT_PROTOCOL" in process.env:
        env["GIT_PROTOCOL"] = process.env["GIT_PROTOCOL"]
    assert repo is not None
    proc = await asyncio.create_subprocess_exec(argv[0], str(repo.path), env=env, stdin=asyncio.subprocess.PIPE,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    await process.redirect(stdin=proc.stdin, stdout=proc.stdout, stderr=proc.stderr, send_eof=True, recv_eof=True)
    code = await proc.wait()
    await process.stdout.drain()
    if write and code == 0:
        host.forge.pushed(repo)
    process.exit(code)
    await process.wait_closed()  # runs asyncssh's clean-up of the redirected streams


async def listen(host: GitHost, host_key: asyncssh.SSHKey, port: int = 0) -> Any:
    return await asyncssh.listen(
        "127.0.0.1", port, server_host_keys=[host_key], server_factory=lambda: _Connection(host),
        process_factory=lambda proc: _serve(host, proc), encoding=None, allow_pty=False,
        x11_forwarding=False, agent_forwarding=False, line_editor=False, reuse_address=True,
    )
