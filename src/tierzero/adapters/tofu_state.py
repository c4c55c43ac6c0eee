"""Keep the secrets a layer's state and saved plans hold (e.g. Talos machine configs in an instance's
`metadata.user_data`) from resting anywhere in plaintext. Which way depends on the binary:

- OpenTofu >= 1.7: its own state and plan encryption, configured through the `TF_ENCRYPTION` environment
  variable (the body of a `terraform { encryption { ... } }` block): a `pbkdf2` key provider with the
  workspace's passphrase, the `aes_gcm` method, for state and plan alike, `enforced` so nothing is ever
  written unencrypted. A state written before encryption was on (or by Terraform, unsealed first) is
  read through an `unencrypted` fallback and written back encrypted; once the local state is seen
  encrypted the fallback is dropped. Works for the local and the S3 backend.
  Source: opentofu.org/docs/language/state/encryption ("Configuration", "Key providers: PBKDF2",
  "Methods: AES-GCM", "Initial setup" with `method "unencrypted"` as fallback).
- Terraform (no client-side state encryption): the local state files and saved plans are kept
  age-encrypted at rest (`<name>.age`, to the workspace's age recipient) and exist in plaintext (0600, in a
  0700 directory) only while a `terraform` command runs. A run killed mid-way (kill -9) leaves its plaintext
  behind; the next command in that directory takes it as the newest copy, then seals it. A remote backend
  would store the plaintext in the bucket: `require_protectable` refuses that combination.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tierzero.errors import OperationError

NATIVE_MIN_VERSION = (1, 7, 0)  # OpenTofu 1.7.0 introduced state and plan encryption
SEALED_SUFFIX = ".age"
STATE_FILES = ("terraform.tfstate", "terraform.tfstate.backup", "errored.tfstate")
PLAN_SUFFIX = ".out"  # TofuRunner saves plans as <name>.out
MIGRATED_MARKER = ".tierzero-state-encrypted"  # written once OpenTofu wrote the state encrypted


@dataclass(frozen=True)
class StateKey:
    """The workspace keys that protect a layer's state: `passphrase` for OpenTofu's pbkdf2 key provider
    (at least 16 characters), the age identity (`AGE-SECRET-KEY-...`) and recipient (`age1...`) for Terraform."""

    passphrase: str = field(repr=False)
    age_identity: str = field(repr=False)
    age_recipient: str

    def __post_init__(self) -> None:
        if len(self.passphrase) < 16:
            raise ValueError("the pbkdf2 passphrase must be at least 16 characters (OpenTofu refuses shorter ones)")


def native_encryption(flavor: str, version: tuple[int, int, int]) -> bool:
    """Whether the binary encrypts state and plans itself (OpenTofu >= 1.7)."""
    return flavor == "tofu" and version >= NATIVE_MIN_VERSION


def encryption_config(passphrase: str, *, migrate: bool) -> str:
    """The `TF_ENCRYPTION` value (HCL, the body of an `encryption` block). `migrate` adds the documented
    `unencrypted` fallback so a plaintext state is read once; new writes are always aes_gcm."""
    quoted = json.dumps(passphrase)  # an HCL string literal; the passphrase never needs escapes beyond JSON's
    fallback = "  fallback {\n    method = method.unencrypted.migrate\n  }\n" if migrate else "  enforced = true\n"
    return (
        f'key_provider "pbkdf2" "tierzero" {{\n  passphrase = {quoted}\n}}\n'
        'method "aes_gcm" "tierzero" {\n  keys = key_provider.pbkdf2.tierzero\n}\n'
        + ('method "unencrypted" "migrate" {}\n' if migrate else "")
        + "state {\n  method = method.aes_gcm.tierzero\n" + fallback + "}\n"
        "plan {\n  method = method.aes_gcm.tierzero\n  enforced = true\n}\n"
    )


def native_environment(workdir: Path, key: StateKey) -> dict[str, str]:
    """The environment OpenTofu needs to read and write this directory's state encrypted."""
    migrate = not (workdir / MIGRATED_MARKER).exists()
    return {"TF_ENCRYPTION": encryption_config(key.passphrase, migrate=migrate)}


def mark_migrated(workdir: Path) -> bool:
    """After an apply: once the local state is seen encrypted, plaintext state is refused from then on
    (`enforced`, no fallback). A remote state cannot be inspected here, so its read-only fallback stays
    (OpenTofu still writes it encrypted only). Returns whether the marker is set."""
    state = workdir / "terraform.tfstate"
    if state.is_file() and b'"encrypted_data"' in state.read_bytes()[:4096]:
        (workdir / MIGRATED_MARKER).write_text("the state in this directory is encrypted by OpenTofu (TF_ENCRYPTION)\n")
    return (workdir / MIGRATED_MARKER).exists()


def plaintext_files(workdir: Path) -> list[Path]:
    """The files in workdir that may hold state or plan contents in plaintext."""
    found = [workdir / name for name in STATE_FILES if (workdir / name).is_file()]
    found += sorted(p for p in workdir.glob(f"*{PLAN_SUFFIX}") if p.is_file())
    return found


def has_local_state(workdir: Path) -> bool:
    """Whether workdir holds a local state, plaintext or sealed."""
    return (workdir / "terraform.tfstate").is_file() or (workdir / f"terraform.tfstate{SEALED_SUFFIX}").is_file()


def sealed_files(workdir: Path) -> list[Path]:
    return sorted(p for p in workdir.glob(f"*{SEALED_SUFFIX}") if p.is_file() and _sealable(p.name[: -len(SEALED_SUFFIX)]))


def _sealable(name: str) -> bool:
    return name in STATE_FILES or name.endswith(PLAN_SUFFIX)


def seal(workdir: Path, key: StateKey) -> list[str]:
    """Encrypt every plaintext state and plan file to `<name>.age` (atomically), then remove the plaintext.
    Returns the names sealed."""
    import pyrage

    recipient = pyrage.x25519.Recipient.from_str(key.age_recipient)
    done = []
    for path in plaintext_files(workdir):
        target = path.with_name(path.name + SEALED_SUFFIX)
        tmp = path.with_name(f".{target.name}.tmp{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, pyrage.encrypt(path.read_bytes(), [recipient]))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
        path.unlink()
        done.append(path.name)
    return done


def unseal(workdir: Path, key: StateKey) -> list[str]:
    """Decrypt `<name>.age` files to 0600 plaintext for one command. A plaintext copy already there is what
    an interrupted command wrote after the last seal: it is newer and is kept. Returns the names decrypted."""
    import pyrage

    identity = pyrage.x25519.Identity.from_str(key.age_identity)
    done = []
    for sealed in sealed_files(workdir):
        plain = sealed.with_name(sealed.name[: -len(SEALED_SUFFIX)])
        if plain.exists():
            continue
        try:
            data = pyrage.decrypt(sealed.read_bytes(), [identity])
        except pyrage.DecryptError as err:
            raise OperationError(
                f"{sealed} cannot be decrypted with the workspace age key: {err}",
                hint="the state was sealed with another workspace's key; restore .tierzero/age.key from your backup",
            ) from None
        fd = os.open(plain, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        done.append(plain.name)
    return done


def adopt_sealed(workdir: Path, key: StateKey) -> list[str]:
    """Switching from Terraform to OpenTofu: the state files Terraform left sealed become plaintext once,
    for OpenTofu to read through the `unencrypted` fallback and write back encrypted (the marker is removed
    so the fallback is offered). Sealed plans are dropped: a plan is made again. Returns the names adopted."""
    if not sealed_files(workdir):
        return []
    refuse_foreign_encryption(workdir)
    names = unseal(workdir, key)
    for sealed in sealed_files(workdir):
        sealed.unlink()
    for name in names:
        if name.endswith(PLAN_SUFFIX):
            (workdir / name).unlink()
    (workdir / MIGRATED_MARKER).unlink(missing_ok=True)
    return [n for n in names if not n.endswith(PLAN_SUFFIX)]


@contextmanager
def unsealed(workdir: Path, key: StateKey) -> Iterator[None]:
    """Plaintext state and plans for the duration of the block, sealed again however it ends (short of
    the process being killed: then the next `unsealed` here picks the plaintext up and seals it)."""
    workdir.mkdir(parents=True, exist_ok=True)
    os.chmod(workdir, 0o700)
    refuse_foreign_encryption(workdir)
    unseal(workdir, key)
    for path in plaintext_files(workdir):
        os.chmod(path, 0o600)
    try:
        yield
    finally:
        seal(workdir, key)


def refuse_foreign_encryption(workdir: Path) -> None:
    """Terraform cannot read a state OpenTofu encrypted: say so instead of letting it fail obscurely."""
    state = workdir / "terraform.tfstate"
    if state.is_file() and b'"encrypted_data"' in state.read_bytes()[:4096]:
        raise OperationError(
            f"{state} is encrypted by OpenTofu (state encryption), which terraform cannot read",
            hint="put OpenTofu >= 1.7 (`tofu`) on PATH again; tierzero uses it whenever it is there",
        )


def require_protectable(*, native: bool, remote_backend: bool, holds_secrets: bool, tool: str) -> None:
    """Refuse a run whose state would hold secrets in plaintext where tierzero cannot seal it."""
    if holds_secrets and remote_backend and not native:
        raise OperationError(
            f"{tool} would store the Talos machine configs (cluster keys) in plaintext in the remote state bucket: "
            "it has no client-side state encryption",
            hint="install OpenTofu >= 1.7 and put `tofu` on PATH (its state encryption is used), "
            "or set cloud.oci.state_backend.type: local (tierzero keeps the local state age-encrypted)",
        )
