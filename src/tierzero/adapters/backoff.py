"""The capacity hunt's backoff between attempts: apart from `capacity` (which loads the tofu
runner and the cloud layer's variables) so that a sandbox can set a short one cheaply."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    base_seconds: float = 30.0
    cap_seconds: float = 600.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2^(attempt-1))]."""
        return rng.uniform(0.0, min(self.cap_seconds, self.base_seconds * 2 ** max(attempt - 1, 0)))
