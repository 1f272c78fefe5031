"""TEST-ONLY registry hook: the protocol reports every secret it draws or derives.

The plaintext-absence oracle (SPEC §8, issue #12) must search every tier for every key a
client holds — not only identity keys but the X3DH SK, root, chain and message keys, AEAD
keys, ratchet, SPK and OPK private keys — or a client that logs its message keys passes
``oracle_clean``. The reference protocol calls :func:`report` at each place such a value is
drawn or derived; it is a no-op (one truthiness test) unless a harness registered a sink with
:func:`reporting`. The protocol stays pure: no I/O here, the sink decides what to do.
Hook lines in the protocol are marked ``# pragma: no mutate`` (they are not protocol logic).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

Sink = Callable[[str, bytes], None]

KEY_KINDS = (
    "X3DH SK", "root key", "chain key", "message key", "AEAD key", "ratchet private",
    "SPK private", "OPK private", "IK private", "SIK seed", "X3DH ephemeral private",
)
"""Every kind :func:`report` is called with."""

DRAWN_KINDS = {
    "identity_key": "IK private",
    "signing_key": "SIK seed",
    "spk": "SPK private",
    "opk": "OPK private",
    "ratchet_key": "ratchet private",
    "ephemeral_key": "X3DH ephemeral private",
}
"""Entropy purposes (semafore.protocol.entropy) of drawn private keys, by kind."""

_sinks: list[Sink] = []


def report(kind: str, value: bytes) -> None:
    """Hand ``value`` (a secret of ``kind``, one of :data:`KEY_KINDS`) to every sink."""
    if _sinks:
        for sink in tuple(_sinks):
            sink(kind, value)


def drawn(purpose: str, private: bytes) -> None:
    """A private key drawn from entropy for ``purpose``."""
    if _sinks:
        report(DRAWN_KINDS.get(purpose, f"{purpose} private"), private)


@contextmanager
def reporting(sink: Sink) -> Iterator[None]:
    """Register ``sink`` for the duration of the block (tests and the simulator only)."""
    _sinks.append(sink)
    try:
        yield
    finally:
        _sinks.remove(sink)
