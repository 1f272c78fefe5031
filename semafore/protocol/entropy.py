"""Injected randomness: protocol code never calls ``os.urandom`` itself.

Every random draw names its *purpose* (``"nonce"``, ``"ratchet_key"``, ``"ephemeral_key"``,
``"identity_key"`` …). Production uses :class:`SystemEntropy`; vectors use
:class:`ScriptedEntropy`, which hands out pinned values per purpose in order, so a vector
can list "the ratchet key pairs and frame nonces each side will draw" (SPEC §6); the
simulator uses :class:`SeededEntropy` so a seed reproduces every byte.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Protocol

from semafore.protocol.errors import ProtocolError


class EntropyExhausted(ProtocolError):
    """A scripted entropy source ran out of values for a purpose."""

    name = "EntropyExhausted"


class Entropy(Protocol):
    """Source of random bytes; ``purpose`` lets deterministic sources keep separate streams."""

    def random_bytes(self, n: int, purpose: str) -> bytes:
        """Return ``n`` random bytes for ``purpose``."""
        ...


class SystemEntropy:
    """The operating system's CSPRNG; ignores ``purpose``."""

    def random_bytes(self, n: int, purpose: str) -> bytes:
        return os.urandom(n)


class ScriptedEntropy:
    """Hands out pinned values per purpose, in order; running dry raises ``EntropyExhausted``."""

    def __init__(self, scripts: Mapping[str, Iterable[bytes]] | None = None) -> None:
        self._queues: dict[str, deque[bytes]] = {
            purpose: deque(values) for purpose, values in (scripts or {}).items()
        }
        self.drawn: list[tuple[str, bytes]] = []

    def push(self, purpose: str, *values: bytes) -> None:
        self._queues.setdefault(purpose, deque()).extend(values)

    def remaining(self, purpose: str) -> int:
        return len(self._queues.get(purpose, ()))

    def random_bytes(self, n: int, purpose: str) -> bytes:
        queue = self._queues.get(purpose)
        if not queue:
            raise EntropyExhausted(f"no scripted value left for {purpose!r}", field=purpose)
        value = queue.popleft()
        if len(value) != n:
            raise EntropyExhausted(
                f"scripted value for {purpose!r} has {len(value)} bytes, {n} needed", field=purpose
            )
        self.drawn.append((purpose, value))
        return value


class SeededEntropy:
    """Deterministic stream per purpose: ``HMAC-SHA256(seed, purpose || counter)`` blocks.

    Not for production keys; for reproducible simulations and vector generation only.
    """

    def __init__(self, seed: bytes | str) -> None:
        self._seed = seed.encode() if isinstance(seed, str) else seed
        self._counters: dict[str, int] = {}

    def fork(self, label: str) -> SeededEntropy:
        """An independent stream (e.g. one per device) derived from this seed and ``label``."""
        return SeededEntropy(hmac.digest(self._seed, b"fork:" + label.encode(), hashlib.sha256))

    def random_bytes(self, n: int, purpose: str) -> bytes:
        counter = self._counters.get(purpose, 0)
        out = b""
        while len(out) < n:
            block = purpose.encode() + b"\x00" + counter.to_bytes(8, "big")
            out += hmac.digest(self._seed, block, hashlib.sha256)
            counter += 1
        self._counters[purpose] = counter
        return out[:n]
