"""SPEC §3 rules the other ratchet tests leave open: the random per-frame nonce that makes a
rolled-back state harmless, and the bounded memory of retired receiving chains."""

from __future__ import annotations

import pytest

from semafore.protocol.errors import DecryptionFailed, DuplicateMessage, TooManySkipped
from semafore.protocol.ratchet import MAX_PREVIOUS_CHAINS, MAX_SKIP, RatchetState
from tests.protocol.conversation import Pair, new_pair


def _round_trip(pair: Pair) -> None:
    """One message each way; from the second on, Bob retires a receiving chain of Alice's."""
    pair.bob.decrypt(pair.alice.encrypt(b"a", pair.entropy))
    pair.alice.decrypt(pair.bob.encrypt(b"b", pair.entropy))


def _with_n(frame: bytes, n: int) -> bytes:
    return frame[:40] + n.to_bytes(4, "big") + frame[44:]


@pytest.mark.cites("SPEC §3 r2")
def test_a_rolled_back_state_reencrypts_under_a_fresh_nonce() -> None:
    """A device restored from a backup re-derives the same message key; with a derived nonce
    the two frames would share (key, nonce). SPEC draws a random nonce per frame instead."""
    pair = new_pair()
    _round_trip(pair)
    pair.bob.decrypt(pair.alice.encrypt(b"step", pair.entropy))  # Alice's DH step is done
    saved = pair.alice.serialize()
    first = pair.alice.encrypt(b"same text", pair.entropy)
    restored = RatchetState.parse(saved)
    again = restored.encrypt(b"same text", pair.entropy)
    assert first[:44] == again[:44]  # same chain, same N: the same message key
    assert first[44:56] != again[44:56]  # ... under another nonce
    assert first[56:] != again[56:]
    assert pair.bob.decrypt(again) == b"same text"
    with pytest.raises(DuplicateMessage):  # that key is used now, whichever frame came first
        pair.bob.decrypt(first)


@pytest.mark.cites("SPEC §3 r8", "SPEC §3 r9")
def test_a_remembered_retired_chain_is_duplicate_below_its_count_and_failed_past_it() -> None:
    pair = new_pair()
    pair.bob.decrypt(pair.alice.encrypt(b"opening", pair.entropy))
    old = [pair.alice.encrypt(b"old %d" % i, pair.entropy) for i in range(3)]
    for frame in old:
        pair.bob.decrypt(frame)
    _round_trip(pair)
    pair.bob.decrypt(pair.alice.encrypt(b"new chain", pair.entropy))
    # Bob retired the chain of ``old`` with PN = 5 messages accounted for.
    before = pair.bob.serialize()
    with pytest.raises(DuplicateMessage):
        pair.bob.decrypt(old[1])
    with pytest.raises(DecryptionFailed):
        pair.bob.decrypt(_with_n(old[2], 5))
    assert pair.bob.serialize() == before


@pytest.mark.cites("SPEC §3 r9", "SPEC §3 r10")
def test_a_chain_older_than_the_memory_follows_the_new_chain_rules() -> None:
    pair = new_pair()
    pair.bob.decrypt(pair.alice.encrypt(b"opening", pair.entropy))
    forgotten = pair.alice.encrypt(b"long ago", pair.entropy)
    pair.bob.decrypt(forgotten)
    for _ in range(MAX_PREVIOUS_CHAINS + 2):  # each round after the first retires a chain
        _round_trip(pair)
    before = pair.bob.serialize()
    with pytest.raises(DecryptionFailed):  # looks like a new chain; its tag fails
        pair.bob.decrypt(forgotten)
    with pytest.raises(TooManySkipped):  # a new chain numbered past MAX_SKIP
        pair.bob.decrypt(_with_n(forgotten, MAX_SKIP + 1))
    assert pair.bob.serialize() == before
