"""Device placement: which relay replica a simulated device connects to, and where it fails
over to.

The replicas themselves (in-process relays under fault controls, their push across one
another, their fronts) are the deploy layer's (:mod:`semafore.deploy.inprocess_replicas`,
issue 14 item 1); placing devices on them is the simulator's: a device is assigned a replica
by :func:`assign` (explicit pins, else a hash of the scenario seed and the device address,
seed §3.4 load balancing made reproducible) and fails over, in a fixed order, to the next
replica that accepts a connection (:func:`preference`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping


def assign(seed: int | str, address: str, count: int, pins: Mapping[str, int] | None = None) -> int:
    """The replica a device (``user:device``) connects to first: its pin, else a hash of the
    seed and the address (stable across runs and independent of installation order)."""
    if pins and address in pins:
        return pins[address]
    if count <= 1:
        return 0
    digest = hashlib.sha256(f"{seed}\x00replica\x00{address}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % count


def preference(first: int, count: int) -> list[int]:
    """Failover order from the assigned replica: ``first``, ``first + 1``, ... (cyclic)."""
    return [(first + k) % count for k in range(count)]


__all__ = ["assign", "preference"]
