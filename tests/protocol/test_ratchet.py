"""SPEC §3 as properties: order-independence, transactional decrypt, exact serialisation."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from semafore.protocol.entropy import ScriptedEntropy
from semafore.protocol.errors import (
    DecryptionFailed,
    DuplicateMessage,
    MalformedState,
    NoSession,
    ProtocolError,
    TooManySkipped,
)
from semafore.protocol.ratchet import MAX_SKIP, MAX_SKIPPED_KEYS, RatchetState
from tests.protocol.conversation import Pair, new_pair

CANONICAL_DECRYPT_ERRORS = {
    "MalformedEnvelope",
    "UnsupportedVersion",
    "DecryptionFailed",
    "DuplicateMessage",
    "TooManySkipped",
    "InvalidKey",
}


def _bootstrapped() -> Pair:
    pair = new_pair()
    pair.bob.decrypt(pair.alice.encrypt(b"hello", pair.entropy))
    pair.alice.decrypt(pair.bob.encrypt(b"hi", pair.entropy))
    return pair


def test_responder_cannot_send_first() -> None:
    pair = new_pair()
    with pytest.raises(NoSession):
        pair.bob.encrypt(b"too early", pair.entropy)


def test_ping_pong_steps_the_dh_ratchet_every_message() -> None:
    pair = new_pair()
    keys = set()
    sender, receiver = pair.alice, pair.bob
    for i in range(10):
        frame = sender.encrypt(b"m%d" % i, pair.entropy)
        keys.add(frame[4:36])
        assert receiver.decrypt(frame) == b"m%d" % i
        sender, receiver = receiver, sender
    assert len(keys) == 10


# A conversation script: rounds of (sender, count). Alice opens; the first frame of each
# round is delivered at once (it enables the peer's reply chain), the rest are held back.
rounds = st.lists(st.integers(1, 6), min_size=1, max_size=6)


@pytest.mark.cites("SPEC §3 r6", "SPEC §3 r8")
@settings(max_examples=60, deadline=None)
@given(rounds, st.randoms(use_true_random=False))
def test_any_delivery_order_decrypts_every_message_exactly_once(
    counts: list[int], rng: object
) -> None:
    import random

    assert isinstance(rng, random.Random)
    pair = new_pair()
    held: dict[str, list[tuple[bytes, bytes]]] = {"alice": [], "bob": []}
    names = ("alice", "bob")
    for round_index, count in enumerate(counts):
        sender = names[round_index % 2]
        receiver = names[1 - round_index % 2]
        for i in range(count):
            plaintext = f"{sender}-{round_index}-{i}".encode()
            frame = pair.side(sender).encrypt(plaintext, pair.entropy)
            if i == 0:
                assert pair.side(receiver).decrypt(frame) == plaintext
            else:
                held[receiver].append((frame, plaintext))
    for receiver, frames in held.items():
        rng.shuffle(frames)
        for frame, plaintext in frames:
            assert pair.side(receiver).decrypt(frame) == plaintext
        for frame, _ in frames:
            with pytest.raises(DuplicateMessage):
                pair.side(receiver).decrypt(frame)
    assert not pair.alice.skipped and not pair.bob.skipped


@pytest.mark.cites("SPEC §3 r10")
@settings(max_examples=80, deadline=None)
@given(st.integers(0, 56 + 16 + 20 - 1), st.integers(1, 255), st.booleans())
# always tried: a forged message number on the current chain (header bytes 40..43 are N) and a
# forged ratchet key (a new chain): the two paths on which a decrypt could commit early
@example(43, 1, False)
@example(4, 1, False)
def test_any_mutation_or_truncation_is_rejected_and_changes_nothing(
    position: int, xor: int, truncate: bool
) -> None:
    pair = _bootstrapped()
    frame = pair.alice.encrypt(b"x" * 20, pair.entropy)
    if truncate:
        bad = frame[:position]
    else:
        mutated = bytearray(frame)
        mutated[position] ^= xor
        bad = bytes(mutated)
    before = pair.bob.serialize()
    with pytest.raises(ProtocolError) as info:
        pair.bob.decrypt(bad)
    assert info.value.name in CANONICAL_DECRYPT_ERRORS
    assert pair.bob.serialize() == before
    assert pair.bob.decrypt(frame) == b"x" * 20


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_canonical_errors(data: bytes) -> None:
    pair = _bootstrapped()
    before = pair.bob.serialize()
    try:
        pair.bob.decrypt(data)
    except ProtocolError as exc:
        assert exc.name in CANONICAL_DECRYPT_ERRORS
    assert pair.bob.serialize() == before


@pytest.mark.cites("SPEC §3 r4")
def test_max_skip_in_the_current_chain() -> None:
    pair = _bootstrapped()
    frames = [pair.alice.encrypt(b"%d" % i, pair.entropy) for i in range(MAX_SKIP + 2)]
    before = pair.bob.serialize()
    with pytest.raises(TooManySkipped):
        pair.bob.decrypt(frames[MAX_SKIP + 1])
    assert pair.bob.serialize() == before
    assert pair.bob.decrypt(frames[MAX_SKIP]) == b"%d" % MAX_SKIP
    assert len(pair.bob.skipped) == MAX_SKIP


@pytest.mark.cites("SPEC §3 r4")
def test_max_skip_in_a_new_chain() -> None:
    pair = _bootstrapped()
    pair.bob.decrypt(pair.alice.encrypt(b"a", pair.entropy))
    frames = [pair.bob.encrypt(b"%d" % i, pair.entropy) for i in range(MAX_SKIP + 2)]
    with pytest.raises(TooManySkipped):
        pair.alice.decrypt(frames[MAX_SKIP + 1])
    assert pair.alice.decrypt(frames[MAX_SKIP]) == b"%d" % MAX_SKIP


@pytest.mark.cites("SPEC §3 r5", "SPEC §3 r8")
def test_old_chain_beyond_max_skip_is_dropped_and_the_step_proceeds() -> None:
    """SPEC §3: PN more than MAX_SKIP ahead loses the old chain's keys, not the new chain."""
    pair = _bootstrapped()
    pair.bob.decrypt(pair.alice.encrypt(b"x", pair.entropy))  # Bob: new chain
    chain = [pair.bob.encrypt(b"old", pair.entropy) for _ in range(MAX_SKIP + 5)]
    pair.alice.decrypt(chain[0])  # the rest of Bob's chain is lost
    pair.bob.decrypt(pair.alice.encrypt(b"y", pair.entropy))  # Bob ratchets
    fresh = pair.bob.encrypt(b"new chain", pair.entropy)
    assert fresh[36:40] == (MAX_SKIP + 5).to_bytes(4, "big")  # PN
    assert pair.alice.decrypt(fresh) == b"new chain"
    assert pair.alice.skipped == {}
    with pytest.raises(DuplicateMessage):  # a lost frame arriving late: its key is gone
        pair.alice.decrypt(chain[7])


@pytest.mark.cites("SPEC §3 r6")
def test_skipped_keys_are_capped_oldest_first() -> None:
    pair = _bootstrapped()
    firsts = []
    for _ in range(3):  # three chains of 900 skipped keys each = 2700 > 2000
        frames = [pair.alice.encrypt(b"m", pair.entropy) for _ in range(901)]
        firsts.append(frames[0])
        pair.bob.decrypt(frames[-1])
        pair.alice.decrypt(pair.bob.encrypt(b"r", pair.entropy))
    assert len(pair.bob.skipped) == MAX_SKIPPED_KEYS
    with pytest.raises(DuplicateMessage):  # evicted: its chain is retired, key gone
        pair.bob.decrypt(firsts[0])
    assert pair.bob.decrypt(firsts[2]) == b"m"


@pytest.mark.cites("SPEC §3 r10")
def test_forged_new_ratchet_key_changes_nothing() -> None:
    pair = _bootstrapped()
    frame = bytearray(pair.alice.encrypt(b"m", pair.entropy))
    frame[4:36] = bytes(range(1, 33))  # unknown ratchet key: a full failed ratchet step
    before = pair.bob.serialize()
    with pytest.raises(DecryptionFailed):
        pair.bob.decrypt(bytes(frame))
    assert pair.bob.serialize() == before


@pytest.mark.cites("SPEC §3 r7")
def test_entropy_failure_on_the_deferred_ratchet_step_commits_nothing() -> None:
    pair = new_pair()
    pair.bob.decrypt(pair.alice.encrypt(b"m", pair.entropy))
    before = pair.bob.serialize()
    with pytest.raises(ProtocolError):  # needs a "ratchet_key" and a "nonce"
        pair.bob.encrypt(b"reply", ScriptedEntropy({"ratchet_key": [bytes(range(32))]}))
    assert pair.bob.serialize() == before


@pytest.mark.cites("SPEC §3 r7", "SPEC §7 r5")
def test_quiescent_sessions_agree_on_the_digest() -> None:
    pair = new_pair()
    for i in range(4):
        pair.bob.decrypt(pair.alice.encrypt(b"a%d" % i, pair.entropy))
        assert pair.alice.digest() == pair.bob.digest()
        pair.alice.decrypt(pair.bob.encrypt(b"b%d" % i, pair.entropy))
        assert pair.alice.digest() == pair.bob.digest()


@settings(max_examples=40, deadline=None)
@given(rounds)
def test_serialisation_round_trips_byte_for_byte(counts: list[int]) -> None:
    pair = new_pair()
    names = ("alice", "bob")
    for round_index, count in enumerate(counts):
        sender, receiver = names[round_index % 2], names[1 - round_index % 2]
        frames = [pair.side(sender).encrypt(b"p", pair.entropy) for _ in range(count)]
        pair.side(receiver).decrypt(frames[-1])
        for state in (pair.alice, pair.bob):
            data = state.serialize()
            loaded = RatchetState.parse(data)
            assert loaded.serialize() == data
            assert loaded.digest() == state.digest()
    # a reloaded state keeps talking
    alice = RatchetState.parse(pair.alice.serialize())
    bob = RatchetState.parse(pair.bob.serialize())
    if bob.can_send:
        assert alice.decrypt(bob.encrypt(b"after reload", pair.entropy))


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_corrupt_state_raises_malformed_state(data: st.DataObject) -> None:
    state = _bootstrapped().alice.serialize()
    cut = data.draw(st.integers(0, len(state) - 1))
    with pytest.raises(MalformedState):
        RatchetState.parse(state[:cut])
    with pytest.raises(MalformedState):
        RatchetState.parse(state + b"\x00")
