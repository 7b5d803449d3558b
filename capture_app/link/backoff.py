"""How long to wait before trying again: exponential backoff with jitter, after gRPC's connection-backoff algorithm
(grpc/grpc doc/connection-backoff.md: initial 1 s, multiplier 1.6, jitter ±20 %, at most 120 s).

Jitter spreads the retries of many bedside apps that lost the trainer at the same moment, so that they do not all
come back at the same instant when it returns.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """Delay before retry number ``attempt`` (1 for the first retry): ``min(max_s, initial_s · multiplier^(attempt−1))``
    times a uniform factor in ``[1 − jitter, 1 + jitter]``."""

    initial_s: float = 1.0
    multiplier: float = 1.6
    max_s: float = 120.0
    #: Relative spread, [0, 1).
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if not (self.initial_s > 0 and self.multiplier >= 1 and self.max_s >= self.initial_s and 0 <= self.jitter < 1):
            raise ValueError(
                "Backoff needs initial_s > 0, multiplier ≥ 1, max_s ≥ initial_s and 0 ≤ jitter < 1, got "
                f"{self.initial_s}, {self.multiplier}, {self.max_s}, {self.jitter}"
            )

    def delay_s(self, attempt: int, rng: random.Random | None = None) -> float:
        base = min(self.max_s, self.initial_s * self.multiplier ** max(0, attempt - 1))
        u = (rng or random).uniform(-self.jitter, self.jitter)
        return base * (1.0 + u)
