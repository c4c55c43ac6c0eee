"""What the plan seals (SOPS-encrypts to the workspace's age recipient) before anything leaves
memory. Rendering stays a pure function of the spec and the stored secrets: a part returns a
`Sealed` plaintext where a file must be encrypted, and `tierzero.workspace.plan` encrypts it."""

from __future__ import annotations

from dataclasses import dataclass

SECRET_REGEX = "^(data|stringData)$"  # Kubernetes Secrets: encrypt only the values


@dataclass(frozen=True)
class Sealed:
    """A file to encrypt: its plaintext, and whether the whole file is encrypted (a binary
    document: machine configs) or only the values `SECRET_REGEX` matches (YAML Secrets)."""

    plaintext: bytes
    whole: bool = False
