"""No AES-GCM (key, nonce) pair seals two different envelopes (issue #15 item 4).

SPEC §3 makes DR_V1 nonces **random** and carries them in the frame for exactly this reason:
a device whose state is rolled back (restored backup, crash before the state was saved,
cloned device) re-derives the same message key, and with a repeated nonce the two
ciphertexts leak the XOR of their plaintexts and the GCM authentication key. This module
finds such a pair from the envelopes alone, so it judges any implementation the same way:

- a DR_V1 frame's key is its message key, fixed by the chain it belongs to and its index:
  (recipient device, ``DHs.pub``, ``N``). A ratchet key pair is drawn fresh for every chain,
  so two envelopes with the same triple were sealed under the same message key (two chains
  share a ``DHs.pub`` only when a key pair was drawn twice — itself the randomness rolled
  back);
- an SMX1's outer key is the X3DH ``SK``, fixed by (recipient device, ``EK_A.pub``, SPK id,
  OPK id) (SPEC §2).

Two *different* envelopes under the same key with the same nonce are a reuse; the same bytes
twice (a retried send, a duplicated request) seal nothing new and are not.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from semafore.protocol import frame as drv1
from semafore.protocol import smx1
from semafore.protocol.errors import ProtocolError


@dataclass(frozen=True)
class Reuse:
    """Two different envelopes sealed under one (key, nonce)."""

    key: str  # how the key is identified, readable
    nonce: bytes
    first: str  # who sent which message, for the evidence
    second: str

    def describe(self) -> str:
        return (f"{self.key} nonce {self.nonce.hex()}: sealed {self.first} and again "
                f"{self.second}")


def key_and_nonce(recipient: str, body: bytes) -> tuple[str, bytes] | None:
    """How ``body``'s AES-GCM key is identified, and its nonce (None: not an SMX1 or DR_V1
    envelope, or one that does not parse — nothing to compare)."""
    try:
        if drv1.is_smx1(body):
            env = smx1.parse(body)
            return (f"SMX1 SK to {recipient} (EK {env.ephemeral.hex()[:16]}…, "
                    f"SPK {env.spk_key_id}, OPK {env.opk_key_id})", env.nonce)
        if drv1.is_drv1(body):
            frame = drv1.parse(body)
            return (f"DR_V1 message key to {recipient} (DHs {frame.ratchet_key.hex()[:16]}…, "
                    f"N={frame.n})", frame.nonce)
    except ProtocolError:
        return None
    return None


def find_reuse(envelopes: Iterable[tuple[str, str, str, bytes]]) -> tuple[int, list[Reuse]]:
    """Over (sender, recipient, what, body) in sending order: how many sealed envelopes were
    examined, and every (key, nonce) that sealed two different envelopes."""
    first: dict[tuple[str, bytes], tuple[bytes, str]] = {}
    found: list[Reuse] = []
    examined = 0
    for sender, recipient, what, body in envelopes:
        ident = key_and_nonce(recipient, body)
        if ident is None:
            continue
        examined += 1
        digest = hashlib.sha256(body).digest()
        where = f"{what} from {sender}"
        earlier = first.setdefault(ident, (digest, where))
        if earlier[0] != digest:
            found.append(Reuse(ident[0], ident[1], earlier[1], where))
    return examined, found


__all__ = ["Reuse", "find_reuse", "key_and_nonce"]
