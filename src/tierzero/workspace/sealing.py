"""Sealing the plan's secret files with sops, without running sops for files that did not change.

Beside the sealed files the plan keeps an index, `sealed.json` at the plan's root, with one entry
per sealed file:

    {"version": 1, "mac": "HMAC-SHA256", "kdf": "HKDF-SHA256",
     "files": {"talos/main/cp-1.sops.yaml": {"plaintext_hmac": "<64 hex>", "ciphertext_sha256": "<64 hex>"}}}

- `plaintext_hmac` is HMAC-SHA256 under a key derived with HKDF-SHA256 (RFC 5869) from the
  workspace's age identity (`.tierzero/age.key`, info "tierzero/sealed-digest/v1"), over the
  file's path, its sops format, its encrypted_regex, the age recipient and its plaintext.
  Without the key an HMAC is indistinguishable from random (it is a PRF), so it tells nothing
  about the plaintext, not even that two files hold the same text (the path is part of the input);
  the key exists only in memory and only for someone who holds the age identity, who can
  decrypt the files anyway. HKDF is one-way, so the key does not give the identity back.
- `ciphertext_sha256` is the plain SHA-256 of the sealed file as written: public data (the file
  itself is in the plan, and in Git for GitOps Secrets), stored so that a file edited or replaced
  by hand is never taken for the one the HMAC describes.

A file is kept as it was (no sops run) when the previous plan holds it, its SHA-256 matches the
index and the HMAC of the new plaintext matches too. Otherwise it is encrypted again, in a thread
pool, as soon as it is rendered. A previous file without an index entry (a plan written before
the index existed) is decrypted and compared once (`encrypt_stable`), so upgrading does not
re-encrypt unchanged files either."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tierzero.adapters.sops import AgeKey, encrypt, encrypt_stable
from tierzero.render.sealing import SECRET_REGEX, Sealed

INDEX = "sealed.json"
INDEX_VERSION = 1
_INFO = b"tierzero/sealed-digest/v1"
MAX_WORKERS = 8  # sops runs at once: each is a short-lived process waiting mostly on its own start


def digest_key(identity: str) -> bytes:
    """32 bytes derived from an age identity (AGE-SECRET-KEY-1...) with HKDF-SHA256, no salt.
    RFC 5869 §2.2-2.3 with the standard library's HMAC: one output block, T(1), is the whole
    key (the same bytes as `cryptography`'s HKDF, which a test checks; importing it cost every
    plan about 25 ms)."""
    prk = hmac.new(bytes(hashlib.sha256().digest_size), identity.strip().encode(), hashlib.sha256).digest()  # extract: salt = HashLen zeros
    return hmac.new(prk, _INFO + b"\x01", hashlib.sha256).digest()  # expand: T(1) = HMAC(PRK, info | 0x01), L = 32 = HashLen


def identity_of(key: AgeKey) -> str | None:
    """The age identity an `AgeKey` names (its key, or the AGE-SECRET-KEY line of its key file)."""
    if key.key:
        return key.key.strip()
    if key.key_file is not None and key.key_file.is_file():
        for line in key.key_file.read_text().splitlines():
            if line.startswith("AGE-SECRET-KEY-"):
                return line.strip()
    return None


def plaintext_hmac(key: bytes, path: str, sealed: Sealed, recipient: str) -> str:
    fmt, regex = _mode(sealed)
    mac = hmac.new(key, b"\0".join([path.encode(), fmt.encode(), (regex or "").encode(), recipient.encode(), b""]), hashlib.sha256)
    mac.update(sealed.plaintext)
    return mac.hexdigest()


def _mode(sealed: Sealed) -> tuple[Literal["binary", "yaml"], str | None]:
    return ("binary", None) if sealed.whole else ("yaml", SECRET_REGEX)


def read_index(directory: Path | None) -> dict[str, dict[str, str]]:
    """The index of a previous plan directory ({} when there is none or it is not readable)."""
    if directory is None:
        return {}
    try:
        doc = json.loads((directory / INDEX).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(doc, dict) or doc.get("version") != INDEX_VERSION or not isinstance(doc.get("files"), dict):
        return {}
    return {p: e for p, e in doc["files"].items() if isinstance(e, dict)}


def index_bytes(entries: Mapping[str, Mapping[str, str]]) -> bytes:
    doc = {"version": INDEX_VERSION, "mac": "HMAC-SHA256", "kdf": "HKDF-SHA256",
           "files": {p: dict(entries[p]) for p in sorted(entries)}}
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()


@dataclass
class Sealer:
    """Encrypt `Sealed` files to `recipient` as they are handed over (`add`), reusing the previous
    ciphertext from `previous_dir` when the index says the plaintext did not change; `finish`
    waits for the encryptions. `key` is the workspace's age key (None: no reuse, no index)."""

    recipient: str
    key: AgeKey | None
    previous_dir: Path | None
    sops_runs: int = 0  # encryptions and decrypt-compares started: what a re-plan should keep at 0
    _digest_key: bytes | None = field(default=None, init=False, repr=False)
    _previous: dict[str, dict[str, str]] = field(default_factory=dict, init=False, repr=False)
    _pool: ThreadPoolExecutor | None = field(default=None, init=False, repr=False)
    _pending: dict[str, Future[tuple[bytes, bool]]] = field(default_factory=dict, init=False, repr=False)
    _done: dict[str, bytes] = field(default_factory=dict, init=False, repr=False)
    _entries: dict[str, dict[str, str]] = field(default_factory=dict, init=False, repr=False)
    _hmacs: dict[str, str] = field(default_factory=dict, init=False, repr=False)
    reused: set[str] = field(default_factory=set, init=False)

    def __post_init__(self) -> None:
        identity = identity_of(self.key) if self.key is not None else None
        self._digest_key = digest_key(identity) if identity else None
        self._previous = read_index(self.previous_dir) if self._digest_key is not None else {}

    def add(self, path: str, sealed: Sealed) -> None:
        old = self._old(path)
        mac = plaintext_hmac(self._digest_key, path, sealed, self.recipient) if self._digest_key is not None else None
        if mac is not None:
            self._hmacs[path] = mac
        entry = self._previous.get(path)
        if old is not None and mac is not None and entry is not None:
            if hmac.compare_digest(entry.get("plaintext_hmac", ""), mac) and entry.get("ciphertext_sha256") == hashlib.sha256(old).hexdigest():
                self._keep(path, old, kept=True)
                return
            old = None  # the index knows this file and it changed: no decrypt-compare needed
        self.sops_runs += 1
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=MAX_WORKERS, thread_name_prefix="sops")
        self._pending[path] = self._pool.submit(self._encrypt, sealed, old)

    def _old(self, path: str) -> bytes | None:
        if self.previous_dir is None:
            return None
        try:
            return (self.previous_dir / path).read_bytes()
        except OSError:
            return None

    def _encrypt(self, sealed: Sealed, old: bytes | None) -> tuple[bytes, bool]:
        fmt, regex = _mode(sealed)
        if old is None or self.key is None:
            return encrypt(sealed.plaintext, self.recipient, fmt=fmt, encrypted_regex=regex), False
        out = encrypt_stable(sealed.plaintext, self.recipient, self.key, old, fmt=fmt, encrypted_regex=regex)
        return out, out is old

    def _keep(self, path: str, data: bytes, *, kept: bool) -> None:
        self._done[path] = data
        if kept:
            self.reused.add(path)
        if path in self._hmacs:
            self._entries[path] = {"plaintext_hmac": self._hmacs[path], "ciphertext_sha256": hashlib.sha256(data).hexdigest()}

    def finish(self) -> dict[str, bytes]:
        """Every sealed file by path, once all are encrypted (the first failure is raised)."""
        try:
            for path, future in self._pending.items():
                data, kept = future.result()
                self._keep(path, data, kept=kept)
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None
        self._pending.clear()
        return dict(self._done)

    def index(self) -> bytes | None:
        """The index of what `finish` returned (None without a key)."""
        return index_bytes(self._entries) if self._digest_key is not None else None

    def __enter__(self) -> Sealer:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
