"""The stand-in hosts' SSH login rules (asyncssh's `SSHServer`), in a module of its own so
asyncssh loads only when a host's first SSH client connects (see `PveHosts._listen`)."""

from __future__ import annotations

from typing import Any

import asyncssh


class Login(asyncssh.SSHServer):
    """Public-key logins with the workspace key only: as root (a Proxmox install: the key the user
    put there; a cloud image: the line cloud-init wrote, see `CloudImageCommands.root_allowed`) or
    as the image's default user. Any other user, or any other key, is refused."""

    def __init__(self, hosts: Any, name: str) -> None:  # a PveHosts (server.py imports this module)
        self.hosts, self.name = hosts, name

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.hosts._sessions.setdefault(self.name, set()).add(conn)

    def connection_lost(self, exc: Exception | None) -> None:
        pass

    def begin_auth(self, username: str) -> bool:
        return True

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        host = self.hosts.hosts[self.name]
        offered = key.export_public_key("openssh").decode().split()[1]
        if offered != self.hosts.authorized_key.split()[1]:
            return False
        if username == "root":
            return not host.image_user or self.hosts.authorized_key.split()[1] in host.files.get("/root/.ssh/authorized_keys", b"").decode()
        return username == host.image_user
