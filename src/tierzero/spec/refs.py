"""Secret references and key paths. The spec never holds a secret, only where to find one."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

SECRET_REF_PATTERN = re.compile(r"^(env:[A-Za-z_][A-Za-z0-9_]*|file:\S.*|sops:[^#\s]+#[A-Za-z0-9_.\[\]\-/]+)$")
SECRET_REF_HELP = "a reference: env:NAME, file:PATH or sops:PATH#key"

# Private key material as people paste it: PEM blocks (PKCS#1/#8, EC, OpenSSH, encrypted, Talos'
# "ED25519 PRIVATE KEY"), the base64 body of an OpenSSH key alone ("openssh-key-v1" encoded, per
# OpenSSH PROTOCOL.key), an age identity (age-encryption.org/v1: Bech32, HRP "AGE-SECRET-KEY-",
# upper case), and a PuTTY .ppk file.
_KEY_MATERIAL = (
    (re.compile(r"-----BEGIN OPENSSH PRIVATE KEY-----|b3BlbnNzaC1rZXktdjE"), "an OpenSSH private key"),
    (re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----"), "a PEM private key"),
    (re.compile(r"AGE-SECRET-KEY-1[02-9AC-HJ-NP-Z]{10,}"), "an age secret key"),
    (re.compile(r"PuTTY-User-Key-File-\d"), "a PuTTY private key"),
)
_PUBLIC_KEY_LINE = re.compile(r"^(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp\d+|sk-\S+) AAAA")


def key_material(text: str) -> str | None:
    """What kind of private key `text` holds ("an age secret key", ...), or None."""
    for pattern, kind in _KEY_MATERIAL:
        if pattern.search(text):
            return kind
    return None


def key_material_message(kind: str) -> str:
    # Never echo the value: it is the very secret we refuse to store.
    return (f"this holds {kind}; secrets never go in the spec (it ends up in Git): save the key in a file "
            "readable only by you (chmod 600) and give that file's path here or as file:PATH")


def _check_secret_ref(value: str) -> str:
    kind = key_material(value)
    if kind:
        raise ValueError(key_material_message(kind))
    if not SECRET_REF_PATTERN.match(value):
        # Never echo the value back: it may be the very secret we refuse to store.
        raise ValueError(f"plaintext secrets are not allowed here; expected {SECRET_REF_HELP}")
    return value


def _check_key_path(value: str) -> str:
    kind = key_material(value)
    if kind:
        raise ValueError(key_material_message(kind))
    if _PUBLIC_KEY_LINE.match(value):
        raise ValueError("this is a public key itself; the field takes the path of its file, like .tierzero/id_ed25519.pub")
    if "\n" in value or "\r" in value or "\x00" in value:
        raise ValueError("a path is one line; the field takes the path of a key file, not the key")
    if not value.strip():
        raise ValueError("empty path; give the path of the key file")
    return value


SecretRef = Annotated[str, AfterValidator(_check_secret_ref)]
KeyPath = Annotated[str, AfterValidator(_check_key_path)]  # the path of a key file, relative to the spec's directory
