"""Secrets of a workspace: generated ones kept SOPS-encrypted in `.tierzero/secrets/`, and the
spec's references (env:NAME, file:PATH, sops:PATH#key) resolved on demand.

Every value that passes through here is registered with the process-wide redactor, so logs
and terminal output never show it.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml

from tierzero.adapters.redact import Redactor, process_redactor
from tierzero.adapters.sops import AgeKey, decrypt, encrypt
from tierzero.errors import InputError
from tierzero.workspace.layout import Workspace, write_private

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$")
_KEY_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")
SUFFIX = ".sops.yaml"

class WorkspaceSecrets:
    """The `SecretStore` of engine steps and renderers (see tierzero.engine.step.SecretStore)."""

    def __init__(
        self,
        workspace: Workspace,
        base_dir: Path | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        self.workspace = workspace
        self.base_dir = base_dir or workspace.root.parent
        self._environ = environ
        self._redactor = redactor or process_redactor()
        self._cache: dict[str, str] = {}
        self._resolved: dict[str, str] = {}
        self._lock = threading.RLock()
        self._name_locks: dict[str, threading.RLock] = {}

    # -- generated secrets -------------------------------------------------------------

    def path_of(self, name: str) -> Path:
        if not _NAME.match(name) or ".." in name.split("/"):
            raise InputError(f"invalid secret name {name!r}", hint="use letters, digits, '.', '_', '-' and '/' between parts")
        return self.workspace.secrets_dir / f"{name}{SUFFIX}"

    def _name_lock(self, name: str) -> threading.RLock:
        """The lock of one secret: a decrypt, encrypt or generation of it runs once at a time, while
        other secrets decrypt beside it (the end-to-end checks read four at once, each a sops
        process). `self._lock` guards only the tables and is never held while waiting for this one."""
        with self._lock:
            lock = self._name_locks.get(name)
            if lock is None:
                lock = self._name_locks[name] = threading.RLock()
            return lock

    def get(self, name: str) -> str | None:
        with self._lock:
            if name in self._cache:
                return self._cache[name]
        with self._name_lock(name):
            with self._lock:
                if name in self._cache:  # another thread read it while this one waited
                    return self._cache[name]
            path = self.path_of(name)
            if not path.exists():
                return None
            doc = yaml.safe_load(decrypt(path.read_bytes(), self.age_key()))
            if not isinstance(doc, dict) or not isinstance(doc.get("value"), str):
                raise InputError(f"{path} is not a tierzero secret file (no string `value`)", hint="restore it from a backup or delete it to generate a new one")
            return self._remember(name, doc["value"])

    def exists(self, name: str) -> bool:
        """Whether the store holds `name`, without decrypting it."""
        with self._lock:
            if name in self._cache:
                return True
        return self.path_of(name).exists()

    def put(self, name: str, value: str) -> None:
        with self._name_lock(name):
            path = self.path_of(name)
            with self._lock:
                same = self._cache.get(name) == value
            if same and path.exists():
                return
            plaintext = yaml.safe_dump({"name": name, "value": value}, sort_keys=True).encode()
            write_private(path, encrypt(plaintext, self.recipient()))
            self._remember(name, value)

    def get_or_create(self, name: str, generate: Callable[[], str]) -> str:
        with self._name_lock(name):  # reentrant: get and put below take it again
            existing = self.get(name)
            if existing is not None:
                return existing
            value = generate()
            if not isinstance(value, str) or not value:
                raise ValueError(f"the generator of secret {name!r} returned no string")
            self.put(name, value)
            return value

    def ref(self, name: str) -> str:
        """A spec-style reference to a stored secret (for outputs that must not carry the value)."""
        path = self.path_of(name)
        try:
            shown = path.relative_to(self.base_dir.resolve())
        except ValueError:
            shown = path
        return f"sops:{shown}#value"

    def names(self) -> list[str]:
        root = self.workspace.secrets_dir
        if not root.is_dir():
            return []
        return sorted(str(p.relative_to(root))[: -len(SUFFIX)] for p in root.rglob(f"*{SUFFIX}"))

    # -- spec references -----------------------------------------------------------------

    def resolve(self, ref: str) -> str:
        """Resolve env:NAME, file:PATH (relative to the spec's directory) or sops:PATH#key."""
        with self._lock:
            if ref in self._resolved:
                return self._resolved[ref]
        kind, _, rest = ref.partition(":")
        if kind == "env":
            value = self._env(rest)
        elif kind == "file":
            value = self._file(rest)
        elif kind == "sops":
            value = self._sops(rest)
        else:
            raise InputError(f"unknown secret reference {ref.split(':', 1)[0]!r}", hint="use env:NAME, file:PATH or sops:PATH#key")
        self._redactor.add(value)
        with self._lock:
            self._resolved[ref] = value
        return value

    def _env(self, name: str) -> str:
        environ = os.environ if self._environ is None else self._environ
        value = environ.get(name)
        if value is None or value == "":
            raise InputError(f"environment variable {name} is not set (referenced as env:{name} in the spec)", hint=f"export {name}=... before running tierzero")
        return value

    def _path(self, raw: str) -> Path:
        path = Path(os.path.expanduser(raw))
        return path if path.is_absolute() else self.base_dir / path

    def _file(self, raw: str) -> str:
        path = self._path(raw)
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise InputError(f"secret file {path} does not exist (referenced as file:{raw})", hint="create it, or fix the path (relative to the spec's directory)") from None
        except OSError as exc:
            raise InputError(f"cannot read secret file {path}: {exc.strerror}") from None
        value = text.rstrip("\r\n")
        if not value:
            raise InputError(f"secret file {path} is empty (referenced as file:{raw})")
        return value

    def _sops(self, rest: str) -> str:
        raw, _, key = rest.partition("#")
        path = self._path(raw)
        if not path.exists():
            raise InputError(f"sops file {path} does not exist (referenced as sops:{rest})", hint="fix the path (relative to the spec's directory)")
        fmt: Literal["json", "yaml"] = "json" if path.suffix == ".json" else "yaml"
        doc = yaml.safe_load(decrypt(path.read_bytes(), self.age_key(), fmt=fmt))
        value = _dig(doc, key)
        if value is None or isinstance(value, (dict, list)):
            raise InputError(f"sops file {path} has no scalar value at {key!r}", hint="the part after '#' is a dotted key, like db.password or users[0].token")
        return str(value)

    # -- keys ------------------------------------------------------------------------------

    def age_key(self) -> AgeKey:
        if not self.workspace.age_key.exists():
            raise InputError(f"no age key at {self.workspace.age_key}", hint="run `tierzero init` to create the workspace, or restore the key from your backup")
        return AgeKey(key_file=self.workspace.age_key)

    def recipient(self) -> str:
        from tierzero.workspace.keys import ensure_age_recipient

        self.age_key()
        return ensure_age_recipient(self.workspace)

    def _remember(self, name: str, value: str) -> str:
        self._redactor.add(value)  # before any other thread can read it from the cache
        with self._lock:
            self._cache[name] = value
        return value


def _dig(doc: Any, key: str) -> Any:
    node = doc
    for match in _KEY_PART.finditer(key):
        name, index = match.group(1), match.group(2)
        if index is not None:
            if not isinstance(node, list) or int(index) >= len(node):
                return None
            node = node[int(index)]
        elif isinstance(node, dict) and name in node:
            node = node[name]
        else:
            return None
    return node
