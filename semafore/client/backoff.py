"""Exponential back-off with jitter for reconnects and retries (deterministic under a seed)."""

from __future__ import annotations

from dataclasses import dataclass

from semafore.protocol.entropy import Entropy


@dataclass(frozen=True)
class Backoff:
    """``delay(n) = min(cap, base * factor**n) * (1 - jitter * u)``, ``u`` drawn from entropy.

    Jitter spreads a fleet's reconnects after a relay restart (no thundering herd); the draw
    uses its own purpose ("backoff") so it never shifts the protocol's random streams.
    """

    base: float = 0.05
    factor: float = 2.0
    cap: float = 5.0
    jitter: float = 0.5
    attempts: int = 8

    def delay(self, attempt: int, entropy: Entropy) -> float:
        raw = min(self.cap, self.base * self.factor**attempt)
        u = int.from_bytes(entropy.random_bytes(2, "backoff"), "big") / 65535
        return raw * (1 - self.jitter * u)
