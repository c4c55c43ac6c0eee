"""An in-memory `SecretStore` (tierzero.engine.step) for tests that need no SOPS round trip.
It records what it generated, so tests can prove a secret was made once and reused."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable


class MemorySecrets:
    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.generated: list[str] = []

    def get(self, name: str) -> str | None:
        return self.values.get(name)

    def put(self, name: str, value: str) -> None:
        self.values[name] = value

    def get_or_create(self, name: str, generate: Callable[[], str]) -> str:
        if name not in self.values:
            self.values[name] = generate()
            self.generated.append(name)
        return self.values[name]

    def resolve(self, ref: str) -> str:
        kind, _, rest = ref.partition(":")
        if kind == "env":
            return os.environ[rest]
        if kind == "file":
            return Path(rest).read_text().strip()
        raise KeyError(ref)
