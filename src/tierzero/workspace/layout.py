"""Where things live inside the workspace directory."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

GITIGNORE = """\
# tierzero workspace: private material never goes to Git.
*
!.gitignore
!*.pub
!age.pub
"""


@dataclass(frozen=True)
class Workspace:
    root: Path

    @classmethod
    def beside(cls, spec_path: Path) -> "Workspace":
        return cls(spec_path.resolve().parent / ".tierzero")

    @property
    def age_key(self) -> Path:
        return self.root / "age.key"

    @property
    def age_recipient_file(self) -> Path:
        return self.root / "age.pub"

    @property
    def ssh_key(self) -> Path:
        return self.root / "id_ed25519"

    @property
    def ssh_public_key(self) -> Path:
        return self.root / "id_ed25519.pub"

    @property
    def secrets_dir(self) -> Path:
        return self.root / "secrets"

    @property
    def render_dir(self) -> Path:
        return self.root / "render"

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    def cluster_dir(self, name: str) -> Path:
        """`<workspace>/clusters/<name>`: a cluster's kubeconfig, talosconfig and GitOps keys."""
        return self.root / "clusters" / name

    def age_recipient(self) -> str:
        return self.age_recipient_file.read_text().strip()


def write_private(path: Path, data: bytes | str) -> None:
    """Write a file readable by its owner only, atomically (never a half-written key)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode() if isinstance(data, str) else data
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, payload)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def write_public(path: Path, data: bytes | str) -> None:
    """Write a non-secret file atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode() if isinstance(data, str) else data
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(payload)
    os.replace(tmp, path)
