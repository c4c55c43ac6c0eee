"""PEM material as the Talos secrets bundle holds it. Apart from `pki` (which issues it) so that
reading a bundle does not load the x509 machinery of cryptography."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PemPair:
    """A PEM certificate (absent for bare keys such as the service-account key) and its PEM key."""

    crt: bytes | None
    key: bytes
