"""Encrypt a tree's Secrets with the real sops, in parallel, reusing unchanged ciphertext."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tierzero.adapters.sops import SECRET_REGEX, AgeKey, encrypt, encrypt_stable


@dataclass
class Encrypted:
    files: dict[str, bytes]
    reused: int


def encrypt_secrets(plaintexts: dict[str, bytes], recipient: str, key: AgeKey | None, previous_dir: Path | None) -> Encrypted:
    if not plaintexts:
        return Encrypted({}, 0)

    def one(item: tuple[str, bytes]) -> tuple[str, bytes, bool]:
        path, plain = item
        old = None
        if previous_dir is not None and key is not None:
            candidate = previous_dir / path
            if candidate.is_file():
                old = candidate.read_bytes()
        if old is None or key is None:
            return path, encrypt(plain, recipient, encrypted_regex=SECRET_REGEX), False
        out = encrypt_stable(plain, recipient, key, old, encrypted_regex=SECRET_REGEX)
        return path, out, out is old

    items = sorted(plaintexts.items())
    with ThreadPoolExecutor(max_workers=min(8, len(items))) as pool:
        results = list(pool.map(one, items))
    return Encrypted({p: data for p, data, _ in results}, sum(1 for *_, reused in results if reused))
