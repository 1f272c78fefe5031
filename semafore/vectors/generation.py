"""Shared generation helpers: the error type and a recorder for scripted randomness."""

from __future__ import annotations

from semafore.protocol.entropy import Entropy


class GenerationError(Exception):
    """The reference and the SPEC re-derivation (or a declared expectation) disagree."""


class ScriptRecorder:
    """Records what a session draws, so a vector can list it (SPEC §6).

    Values come from a seeded stream on first use. ``attempt()`` starts an operation;
    ``rollback()`` makes a failed operation's draws available again, mirroring the adapter
    contract (a draw is consumed only by an operation that succeeds).
    """

    def __init__(self, source: Entropy) -> None:
        self._source = source
        self.values: dict[str, list[bytes]] = {}
        self._cursor: dict[str, int] = {}
        self._mark: dict[str, int] = {}

    def attempt(self) -> ScriptRecorder:
        self._mark = dict(self._cursor)
        return self

    def rollback(self) -> None:
        self._cursor = dict(self._mark)

    def random_bytes(self, n: int, purpose: str) -> bytes:
        values = self.values.setdefault(purpose, [])
        cursor = self._cursor.get(purpose, 0)
        if cursor == len(values):
            values.append(self._source.random_bytes(n, purpose))
        self._cursor[purpose] = cursor + 1
        return values[cursor]

    def used(self, purpose: str) -> list[bytes]:
        """The values successful operations consumed, in order."""
        return self.values.get(purpose, [])[: self._cursor.get(purpose, 0)]
