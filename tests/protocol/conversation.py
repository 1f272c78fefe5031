"""Test helpers: a two-party ratchet conversation with a seeded entropy source."""

from __future__ import annotations

from dataclasses import dataclass, field

from semafore.protocol.entropy import SeededEntropy
from semafore.protocol.primitives import X25519KeyPair
from semafore.protocol.ratchet import RatchetState

SK = bytes(range(32))
AD = b"associated-data:" + bytes(48)


@dataclass
class Pair:
    alice: RatchetState
    bob: RatchetState
    entropy: SeededEntropy = field(default_factory=lambda: SeededEntropy("pair"))

    def side(self, name: str) -> RatchetState:
        return self.alice if name == "alice" else self.bob


def new_pair(seed: str = "pair") -> Pair:
    entropy = SeededEntropy(seed)
    spk = X25519KeyPair.generate(entropy, "spk")
    alice = RatchetState.initiator(SK, AD, spk.public, entropy)
    bob = RatchetState.responder(SK, AD, spk)
    return Pair(alice, bob, entropy)
