"""What an infra action on a relay replica changed (issue #11, "faults prove they fired").

A scenario's ``infra`` step on ``target: server`` (docs/simulator.md) that changed nothing
proved nothing: each action on an in-process replica
(:class:`semafore.deploy.inprocess_replicas.InProcessReplica`) returns an
:class:`InfraRecord` counting what it did, and a stop of a stopped replica says why it did
nothing instead of raising.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

InfraVerb = Literal["start", "stop", "kill", "restart", "pause", "unpause"]
REPLICA_ACTIONS: tuple[str, ...] = (
    "started", "stopped", "killed", "paused", "resumed",
    "connections_closed", "connections_reset", "in_flight_cancelled",
    "connections_held", "bytes_held", "connections_released", "bytes_released",
)
"""What an infra action on a replica can be seen to do: the keys of InfraRecord.acted.
``connections_closed``/``connections_reset``: client connections open through the replica's
front when a stop closed them gracefully / a kill reset them; ``in_flight_cancelled``:
request and WebSocket tasks a kill cancelled; ``connections_held``/``bytes_held``: counted
on the pause's record *while* it lasts (new connections and bytes, either way, that waited at
the frozen front); ``connections_released``/``bytes_released``: what was still waiting when
the replica was unpaused (or stopped, which unpauses first)."""


@dataclass(eq=False)
class InfraRecord:
    """One infra action on a server replica (``replica`` None: every replica, counts summed)
    and what it changed. ``acted`` of a ``pause`` keeps counting what the frozen replica holds
    until it is unpaused. ``reason`` says why an action changed nothing."""

    action: InfraVerb
    replica: int | None
    acted: Counter[str] = field(default_factory=Counter)
    reason: str = ""

    @property
    def fired(self) -> bool:
        """True once the action changed the replica (its state or its connections)."""
        return any(n > 0 for n in self.acted.values())

    def note(self, what: str, n: int = 1) -> None:
        if what not in REPLICA_ACTIONS:
            raise ValueError(f"acted: unknown replica action {what!r}, expected one of "
                             f"{REPLICA_ACTIONS}")
        if n:
            self.acted[what] += n

    def merge(self, other: InfraRecord) -> None:
        """Add another record's counts (restart = stop + start; several replicas)."""
        for what, n in other.acted.items():
            self.note(what, n)
        if other.reason and not other.fired:
            self.reason = "; ".join(r for r in (self.reason, other.reason) if r)

    def describe(self) -> str:
        """``kill replica 1: killed 1, connections_reset 3`` (or why nothing changed)."""
        which = "every replica" if self.replica is None else f"replica {self.replica}"
        done = ", ".join(f"{k} {n}" for k, n in self.acted.items() if n)
        return f"{self.action} {which}: {done or 'nothing changed'}" + (
            f" ({self.reason})" if self.reason and not done else "")
