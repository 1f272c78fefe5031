"""Protocol rules the mutation run (docs/mutation.md) found no test for.

Randomness draws and their purposes (SPEC §6: vectors script "the ratchet key pairs and frame
nonces each side will draw", so the order and names are part of the interop contract), the
entropy sources' own definitions, key and state equality, session bookkeeping of SPEC §2/§4
(which session is current, what a responder keeps, whose error is reported) and TOFU.
"""

from __future__ import annotations

import hashlib
import hmac

import pytest

from semafore.protocol import frame, secrets, session_cipher
from semafore.protocol.entropy import ScriptedEntropy, SeededEntropy, SystemEntropy
from semafore.protocol.errors import (
    DecryptionFailed,
    DuplicateMessage,
    TooManySkipped,
    UntrustedIdentity,
)
from semafore.protocol.identity import IdentityStore, RemoteIdentity
from semafore.protocol.keys import DeviceKeys, bundle_from_dict, bundle_to_dict
from semafore.protocol.primitives import Ed25519KeyPair, X25519KeyPair
from semafore.protocol.ratchet import (
    MAX_PREVIOUS_CHAINS,
    MAX_SKIP,
    MAX_SKIPPED_KEYS,
    RatchetState,
)
from semafore.protocol.session import Bootstrap, Role, Session, SessionRecord
from tests.protocol.conversation import new_pair


class RecordingEntropy:
    """Seeded bytes, with the purpose of every draw recorded in order."""

    def __init__(self, seed: str) -> None:
        self.inner = SeededEntropy(seed)
        self.purposes: list[str] = []

    def random_bytes(self, n: int, purpose: str) -> bytes:
        self.purposes.append(purpose)
        return self.inner.random_bytes(n, purpose)


# -- entropy --------------------------------------------------------------------------------


def test_device_keys_draw_identity_signing_spk_then_opks() -> None:
    entropy = RecordingEntropy("draws")
    keys = DeviceKeys.generate(entropy, opk_count=2)
    assert entropy.purposes == ["identity_key", "signing_key", "spk", "opk", "opk"]
    assert keys.spk.key_id == "spk-0"
    assert list(keys.opks) == ["opk-0", "opk-1"]
    made = keys.generate_opks(entropy, 2)
    assert [opk.key_id for opk in made] == ["opk-2", "opk-3"]
    assert all(keys.opks[opk.key_id] is opk for opk in made)
    assert entropy.purposes[5:] == ["opk", "opk"]


def test_device_keys_have_no_one_time_prekeys_unless_asked() -> None:
    keys = DeviceKeys.generate(SeededEntropy("none"))
    assert keys.opks == {}
    assert keys.next_opk_index == 0


def test_spk_rotation_numbers_key_ids_and_draws_an_spk() -> None:
    entropy = RecordingEntropy("rotate")
    keys = DeviceKeys.generate(entropy)
    rotated = [keys.rotate_spk(entropy).key_id for _ in range(3)]
    assert rotated == ["spk-1", "spk-2", "spk-3"]
    assert entropy.purposes[3:] == ["spk", "spk", "spk"]


def test_a_session_draws_ephemeral_then_ratchet_key_then_outer_and_inner_nonce() -> None:
    alice = DeviceKeys.generate(SeededEntropy("draw-alice"))
    bob = DeviceKeys.generate(SeededEntropy("draw-bob"))
    entropy = RecordingEntropy("session")
    record = SessionRecord()
    record.install(
        session_cipher.initiate_session(alice.identity, "alice:a", bob.bundle("bob", "b"), entropy)
    )
    assert entropy.purposes == ["ephemeral_key", "ratchet_key"]
    session_cipher.encrypt(record, b"hello", entropy)
    assert entropy.purposes[2:] == ["nonce", "nonce"]


def test_after_a_reply_the_next_frame_draws_its_ratchet_key_then_its_nonce() -> None:
    """SPEC §3 (deferred sending step): the DH step's key pair is drawn at the next encrypt."""
    pair = new_pair("deferred")
    pair.bob.decrypt(pair.alice.encrypt(b"a", pair.entropy))
    entropy = RecordingEntropy("deferred-bob")
    pair.bob.encrypt(b"b", entropy)
    pair.bob.encrypt(b"c", entropy)
    assert entropy.purposes == ["ratchet_key", "nonce", "nonce"]


def test_a_registered_secrets_sink_sees_each_drawn_private_key_with_its_kind() -> None:
    """The test-only hook the plaintext-absence oracle uses (SPEC §8): what is drawn is told."""
    reported: list[tuple[str, bytes]] = []
    with secrets.reporting(lambda kind, value: reported.append((kind, value))):
        keys = DeviceKeys.generate(SeededEntropy("secrets"), opk_count=1)
    assert reported == [
        ("IK private", keys.identity.ik.private),
        ("SIK seed", keys.identity.sik.private),
        ("SPK private", keys.spk.keypair.private),
        ("OPK private", keys.opks["opk-0"].keypair.private),
    ]
    DeviceKeys.generate(SeededEntropy("after"))
    assert len(reported) == 4  # the sink is gone after the block
    with secrets.reporting(lambda kind, value: reported.append((kind, value))):
        secrets.drawn("session_key", b"\x01")  # a purpose without a kind of its own
    assert reported[4:] == [("session_key private", b"\x01")]


def test_scripted_entropy_push_extends_a_purpose_and_records_what_was_drawn() -> None:
    entropy = ScriptedEntropy({"nonce": [b"\x01" * 12]})
    entropy.push("nonce", b"\x02" * 12, b"\x03" * 12)
    entropy.push("ratchet_key", b"\x04" * 32)
    assert (entropy.remaining("nonce"), entropy.remaining("ratchet_key")) == (3, 1)
    assert entropy.remaining("other") == 0
    draws = [entropy.random_bytes(12, "nonce") for _ in range(3)]
    assert draws == [b"\x01" * 12, b"\x02" * 12, b"\x03" * 12]
    assert entropy.random_bytes(32, "ratchet_key") == b"\x04" * 32
    assert entropy.drawn == [
        ("nonce", b"\x01" * 12),
        ("nonce", b"\x02" * 12),
        ("nonce", b"\x03" * 12),
        ("ratchet_key", b"\x04" * 32),
    ]


def test_system_entropy_returns_fresh_bytes_of_the_asked_length() -> None:
    system = SystemEntropy()
    first, second = system.random_bytes(32, "nonce"), system.random_bytes(32, "nonce")
    assert len(first) == len(second) == 32
    assert first != second
    assert len(system.random_bytes(7, "nonce")) == 7


def test_seeded_entropy_is_hmac_of_purpose_and_counter_and_fork_of_its_label() -> None:
    seed = b"the seed"

    def block(purpose: bytes, counter: int) -> bytes:
        message = purpose + b"\x00" + counter.to_bytes(8, "big")
        return hmac.new(seed, message, hashlib.sha256).digest()

    entropy = SeededEntropy(seed)
    assert entropy.random_bytes(40, "nonce") == (block(b"nonce", 0) + block(b"nonce", 1))[:40]
    assert entropy.random_bytes(32, "nonce") == block(b"nonce", 2)  # exactly one block used
    assert entropy.random_bytes(8, "nonce") == block(b"nonce", 3)[:8]
    forked_seed = hmac.new(seed, b"fork:device-1", hashlib.sha256).digest()
    assert SeededEntropy(seed).fork("device-1").random_bytes(32, "nonce") == SeededEntropy(
        forked_seed
    ).random_bytes(32, "nonce")
    assert SeededEntropy("text").random_bytes(8, "p") == SeededEntropy(b"text").random_bytes(8, "p")


# -- equality and representation ------------------------------------------------------------


def test_key_pairs_are_equal_exactly_when_their_private_keys_are() -> None:
    one = X25519KeyPair.from_private(b"\x01" * 32)
    assert one == X25519KeyPair.from_private(b"\x01" * 32)
    assert one != X25519KeyPair.from_private(b"\x02" * 32)
    assert one != b"\x01" * 32
    assert hash(one) == hash(one.public)
    signing = Ed25519KeyPair(b"\x01" * 32)
    assert signing == Ed25519KeyPair(b"\x01" * 32)
    assert signing != Ed25519KeyPair(b"\x02" * 32)
    assert signing != one
    assert hash(signing) == hash(signing.public)
    assert len({one, X25519KeyPair.from_private(b"\x01" * 32)}) == 1


def test_ratchet_states_are_equal_exactly_when_they_serialise_the_same() -> None:
    pair, again = new_pair("eq"), new_pair("eq")
    assert pair.alice == again.alice
    assert pair.alice != pair.bob
    assert pair.alice != pair.alice.serialize()
    again.alice.encrypt(b"x", again.entropy)
    assert pair.alice != again.alice


def test_ratchet_state_repr_shows_no_secret() -> None:
    state = RatchetState(b"\x01" * 32, b"ad", X25519KeyPair(b"\x02" * 32, b"\xab" * 32), ns=3)
    state.skipped[(b"\x03" * 32, 1)] = b"\x04" * 32
    assert repr(state) == "RatchetState(dhs=abababababababab…, ns=3, nr=0, pn=0, skipped=1)"


def test_bundle_without_one_time_prekey_round_trips_as_json_null() -> None:
    bundle = DeviceKeys.generate(SeededEntropy("no-opk")).bundle("bob", "phone")
    doc = bundle_to_dict(bundle, bytes.hex)
    assert doc["opk"] is None
    assert bundle_from_dict(doc, bytes.fromhex) == bundle


def test_the_first_key_beyond_the_skipped_key_cap_evicts_exactly_the_oldest() -> None:
    """SPEC §3: at most 2000 skipped keys per session, oldest evicted first."""
    pair = new_pair("cap")
    first_chain = pair.alice.sending_ratchet_key

    def chain_of(count: int) -> None:
        frames = [pair.alice.encrypt(b"m", pair.entropy) for _ in range(count)]
        pair.bob.decrypt(frames[-1])  # skips count - 1 keys
        pair.alice.decrypt(pair.bob.encrypt(b"r", pair.entropy))  # Alice's next chain

    chain_of(1001)
    chain_of(1001)
    assert len(pair.bob.skipped) == MAX_SKIPPED_KEYS  # at the cap: nothing evicted yet
    assert (first_chain, 0) in pair.bob.skipped
    chain_of(2)
    assert len(pair.bob.skipped) == MAX_SKIPPED_KEYS
    assert (first_chain, 0) not in pair.bob.skipped
    assert (first_chain, 1) in pair.bob.skipped


def test_an_old_chain_exactly_max_skip_behind_is_still_kept() -> None:
    """SPEC §3: the old chain's keys are dropped only when PN is *more* than MAX_SKIP ahead."""
    pair = new_pair("behind")
    chain = [pair.alice.encrypt(b"a%d" % i, pair.entropy) for i in range(MAX_SKIP + 1)]
    pair.bob.decrypt(chain[0])
    pair.alice.decrypt(pair.bob.encrypt(b"r", pair.entropy))
    pair.bob.decrypt(pair.alice.encrypt(b"next chain", pair.entropy))  # PN = MAX_SKIP + 1
    assert len(pair.bob.skipped) == MAX_SKIP
    assert pair.bob.decrypt(chain[-1]) == b"a%d" % MAX_SKIP


@pytest.mark.parametrize("side", ["alice", "bob"])
def test_a_forged_previous_chain_length_before_any_receiving_chain_changes_nothing(
    side: str,
) -> None:
    """No receiving chain yet (the initiator before a reply, a fresh responder): a frame
    with a new ratchet key and a made-up PN fails its tag and leaves the state as it was."""
    state = new_pair("forged-pn").side(side)
    before = state.serialize()
    forged = frame.encode_header(bytes(range(32)), 5, 0, bytes(12)) + bytes(16)
    with pytest.raises(DecryptionFailed):
        state.decrypt(forged)
    assert state.serialize() == before


def test_max_skip_counts_from_the_next_expected_message_of_the_chain() -> None:
    """SPEC §3: a frame may skip at most MAX_SKIP keys of the current receiving chain."""
    pair = new_pair("skip-boundary")
    chain = [pair.alice.encrypt(b"m", pair.entropy) for _ in range(MAX_SKIP + 3)]
    pair.bob.decrypt(chain[0])  # the next expected message is 1
    too_far = pair.bob.serialize()
    with pytest.raises(TooManySkipped):
        pair.bob.decrypt(chain[MAX_SKIP + 2])  # would skip 1 .. MAX_SKIP + 1
    assert pair.bob.serialize() == too_far
    assert pair.bob.decrypt(chain[MAX_SKIP + 1]) == b"m"  # skips exactly MAX_SKIP
    assert len(pair.bob.skipped) == MAX_SKIP


def test_exactly_the_last_five_retired_chains_are_remembered() -> None:
    """SPEC §3: the last 5 retired receiving chains are remembered for duplicate detection."""
    pair = new_pair("retired")
    keys = []
    for _ in range(MAX_PREVIOUS_CHAINS + 2):
        sent = pair.alice.encrypt(b"a", pair.entropy)  # a new chain after every reply
        keys.append(pair.alice.sending_ratchet_key)
        pair.bob.decrypt(sent)
        pair.alice.decrypt(pair.bob.encrypt(b"b", pair.entropy))
    # Bob's current receiving chain is keys[-1]; the five before it are retired.
    assert list(pair.bob.previous) == keys[-1 - MAX_PREVIOUS_CHAINS : -1]
    assert all(count == 1 for count in pair.bob.previous.values())


def test_an_initiator_that_never_received_retires_no_chain() -> None:
    pair = new_pair("first-reply")
    pair.bob.decrypt(pair.alice.encrypt(b"a", pair.entropy))
    pair.alice.decrypt(pair.bob.encrypt(b"b", pair.entropy))
    assert pair.alice.previous == {}


@pytest.mark.parametrize("wrap", [bytearray, memoryview])
def test_frames_decrypt_from_any_bytes_like_buffer(wrap: type) -> None:
    pair = new_pair("buffers")
    data = pair.alice.encrypt(b"payload", pair.entropy)
    assert pair.bob.decrypt(wrap(data)) == b"payload"


# -- sessions (SPEC §2, §4) -----------------------------------------------------------------


def _session(tag: int) -> Session:
    return Session(new_pair(f"s{tag}").alice, Role.INITIATOR, bytes((tag,)) * 32, None)


def test_install_archives_the_previous_current_newest_first() -> None:
    record = SessionRecord()
    first, second, third = _session(1), _session(2), _session(3)
    for session in (first, second, third):
        record.install(session)
    assert record.current is third
    assert record.archived == [second, first]
    record.install(first)  # an archived session that decrypted becomes current again
    assert record.current is first
    assert record.archived == [third, second]


def test_archive_current_puts_it_first_in_the_archive() -> None:
    record = SessionRecord()
    first, second = _session(1), _session(2)
    record.install(first)
    record.install(second)
    record.archive_current()
    assert record.current is None
    assert record.archived == [second, first]
    record.archive_current()  # nothing current: nothing changes
    assert record.archived == [second, first]


class _Peer:
    def __init__(self, name: str) -> None:
        self.address = f"{name}:phone"
        self.entropy = SeededEntropy(name)
        self.keys = DeviceKeys.generate(self.entropy, opk_count=2)
        self.record = SessionRecord()

    def receive(self, sender: _Peer, envelope: bytes) -> bytes:
        identity = sender.keys.identity
        return session_cipher.decrypt(
            self.record,
            self.keys,
            self.address,
            identity.ik.public,
            identity.sik.public,
            sender.address,
            envelope,
        )


def _bootstrapped(opk: str | None = "opk-1") -> tuple[_Peer, _Peer, bytes]:
    alice, bob = _Peer("alice"), _Peer("bob")
    bundle = bob.keys.bundle("bob", "phone", opk)
    alice.record.install(
        session_cipher.initiate_session(alice.keys.identity, alice.address, bundle, alice.entropy)
    )
    first = session_cipher.encrypt(alice.record, b"hello", alice.entropy)
    assert bob.receive(alice, first) == b"hello"
    return alice, bob, first


def test_the_responder_keeps_the_smx1_parameters_of_its_bootstrap() -> None:
    alice, bob, _ = _bootstrapped("opk-1")
    session = bob.record.current
    assert session is not None and alice.record.current is not None
    assert session.role is Role.RESPONDER
    assert alice.record.current.bootstrap is not None
    assert session.bootstrap == Bootstrap(alice.record.current.bootstrap.sk, "spk-0", "opk-1")


def test_a_resent_smx1_needs_the_responder_to_still_hold_sk() -> None:
    alice, bob, _ = _bootstrapped()
    resent = session_cipher.encrypt(alice.record, b"again", alice.entropy)
    assert bob.record.current is not None
    bob.record.current.bootstrap = None  # e.g. a session whose SMX1 parameters are gone
    with pytest.raises(DuplicateMessage) as info:
        bob.receive(alice, resent)
    assert info.value.field == "ephemeral"


def test_when_every_session_fails_the_current_sessions_error_is_reported() -> None:
    alice, bob, _ = _bootstrapped()
    reply = session_cipher.encrypt(bob.record, b"reply", bob.entropy)
    assert alice.receive(bob, reply) == b"reply"
    # Alice's only session now fails the replayed reply as a duplicate; an archived session
    # of hers that cannot decrypt it fails differently, later in the order.
    other = _Peer("carol")
    archived = session_cipher.initiate_session(
        alice.keys.identity, alice.address, other.keys.bundle("carol", "phone"), alice.entropy
    )
    assert alice.record.current is not None
    alice.record.archived.append(archived)
    with pytest.raises(DuplicateMessage):
        alice.receive(bob, reply)
    alice.record.archived.insert(0, alice.record.current)
    alice.record.current = archived
    with pytest.raises(DecryptionFailed):
        alice.receive(bob, reply)


def test_an_accepted_identity_change_is_pinned() -> None:
    store = IdentityStore()
    old, new = (
        RemoteIdentity(b"\x01" * 32, b"\x02" * 32),
        RemoteIdentity(b"\x01" * 32, b"\x03" * 32),
    )
    assert store.check("bob:phone", old) is False
    assert store.check("bob:phone", old) is False
    assert store.check("bob:phone", new, accept_change=True) is True
    assert store.trusted["bob:phone"] == new
    assert store.check("bob:phone", new) is False
    with pytest.raises(UntrustedIdentity):
        store.check("bob:phone", old)


def test_a_resent_smx1_of_an_archived_session_makes_it_current_again() -> None:
    """SPEC §4: an archived session that succeeds becomes current (here via a resent SMX1)."""
    alice, bob, _ = _bootstrapped()
    first = bob.record.current
    resent = session_cipher.encrypt(alice.record, b"again", alice.entropy)
    alice.record.archive_current()  # Alice bootstraps a second session, Bob installs it
    bundle = bob.keys.bundle("bob", "phone", "opk-0")
    alice.record.install(
        session_cipher.initiate_session(alice.keys.identity, alice.address, bundle, alice.entropy)
    )
    assert bob.receive(alice, session_cipher.encrypt(alice.record, b"new", alice.entropy)) == b"new"
    assert bob.record.archived == [first]
    assert bob.receive(alice, resent) == b"again"
    assert bob.record.current is first
