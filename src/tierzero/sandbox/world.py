"""The sandbox's outside world on disk: what the stand-ins hold (VMs, the Proxmox cluster,
Talos nodes, Kubernetes objects, Infisical's database) survives the process, like real
servers do, so a re-run skips finished steps and a killed run resumes against the world
it left behind.

One document per stand-in under `<workspace>/sandbox/world/`, age-encrypted to the
workspace key (the documents hold machine configs and tokens), mode 0600, written
atomically after every change a client could have seen: a kill -9 at any moment leaves
each document either before or after a change, never half of one.

`world.id` names this world. The engine keeps the id its sandbox state was built against;
a different or missing id means the world was wiped, and the state is forgotten with it.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import threading
from pathlib import Path
from typing import Any

WORLD_DIR = "world"
ID_FILE = "world.id"


class WorldFile:
    """One stand-in's document. `save` is thread-safe and cheap: a document equal to the one
    last loaded or written is not written again (stand-ins call it after every request), and
    there is no fsync (a killed process loses nothing the page cache holds; only a power cut
    could, and the sandbox is not a database)."""

    def __init__(self, path: Path, recipient: Any, identity: Any) -> None:
        self.path, self._recipient, self._identity = path, recipient, identity
        self._lock = threading.Lock()
        self._last: bytes | None = None  # the plaintext on disk, as this process knows it
        self.writes = 0

    @staticmethod
    def _plain(data: dict[str, Any]) -> bytes:
        return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()

    def load(self) -> dict[str, Any] | None:
        import pyrage

        try:
            blob = self.path.read_bytes()
        except FileNotFoundError:
            return None
        data = json.loads(pyrage.decrypt(blob, [self._identity]))
        with self._lock:
            self._last = self._plain(data)
        return data

    def save(self, data: dict[str, Any]) -> None:
        import pyrage

        plain = self._plain(data)
        with self._lock:
            if plain == self._last:
                return
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, pyrage.encrypt(plain, [self._recipient]))
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
            self._last = plain
            self.writes += 1


class World:
    """The documents of one workspace's sandbox. Build with `World.open(workspace)`."""

    def __init__(self, directory: Path, identity: str) -> None:
        import pyrage

        self.directory = directory
        self._identity = pyrage.x25519.Identity.from_str(identity)
        self._recipient = self._identity.to_public()
        self._files: dict[str, WorldFile] = {}
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o700)
        id_file = directory / ID_FILE
        try:
            self.id = id_file.read_text().strip()
        except FileNotFoundError:
            self.id = ""
        if not self.id:
            self.id = secrets.token_hex(8)
            tmp = id_file.with_name(f".{ID_FILE}.{os.getpid()}.tmp")
            tmp.write_text(self.id + "\n")
            os.replace(tmp, id_file)

    @classmethod
    def open(cls, workspace: Any) -> "World":
        from tierzero.workspace.keys import load_age_identity

        return cls(Path(workspace.root) / "sandbox" / WORLD_DIR, load_age_identity(workspace))

    @staticmethod
    def current_id(workspace: Any) -> str | None:
        """The id of the workspace's world, or None when there is none (never created, or wiped)."""
        try:
            return (Path(workspace.root) / "sandbox" / WORLD_DIR / ID_FILE).read_text().strip() or None
        except FileNotFoundError:
            return None

    def file(self, name: str) -> WorldFile:
        if name not in self._files:
            if not name.replace("-", "").replace("_", "").isalnum():
                raise ValueError(f"world document names are plain words, not {name!r}")
            self._files[name] = WorldFile(self.directory / f"{name}.json.age", self._recipient, self._identity)
        return self._files[name]

    def names(self) -> list[str]:
        return sorted(p.name.removesuffix(".json.age") for p in self.directory.glob("*.json.age"))

    def load_all(self) -> dict[str, dict[str, Any] | None]:
        """Every document, decrypted: what tests compare to tell two worlds apart."""
        return {name: self.file(name).load() for name in self.names()}

    @staticmethod
    def wipe(workspace: Any) -> None:
        """Forget the world: the next sandbox run starts from empty stand-ins."""
        shutil.rmtree(Path(workspace.root) / "sandbox" / WORLD_DIR, ignore_errors=True)
