"""SPEC §2/§4 end to end: SMX1 resend and reuse, OPK deletion, simultaneous initiation,
reset notices, session records and their exact serialisation."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from semafore.protocol import session_cipher
from semafore.protocol.entropy import SeededEntropy
from semafore.protocol.errors import (
    DecryptionFailed,
    DuplicateMessage,
    NoSession,
    ProtocolError,
    UnknownPrekey,
    UntrustedIdentity,
)
from semafore.protocol.frame import is_drv1, is_smx1
from semafore.protocol.identity import IdentityStore, RemoteIdentity
from semafore.protocol.keys import DeviceKeys
from semafore.protocol.session import MAX_ARCHIVED_SESSIONS, SessionRecord


@dataclass
class Device:
    user: str
    name: str
    keys: DeviceKeys
    entropy: SeededEntropy
    records: dict[str, SessionRecord] = field(default_factory=dict)

    @property
    def address(self) -> str:
        return f"{self.user}:{self.name}"

    def record(self, peer: Device) -> SessionRecord:
        return self.records.setdefault(peer.address, SessionRecord())

    def start(self, peer: Device, opk: str | None = None) -> None:
        bundle = peer.keys.bundle(peer.user, peer.name, opk)
        session = session_cipher.initiate_session(
            self.keys.identity, self.address, bundle, self.entropy
        )
        self.record(peer).install(session)

    def send(self, peer: Device, text: bytes) -> bytes:
        return session_cipher.encrypt(self.record(peer), text, self.entropy)

    def receive(self, peer: Device, envelope: bytes) -> bytes:
        return session_cipher.decrypt(
            self.record(peer),
            self.keys,
            self.address,
            peer.keys.identity.ik.public,
            peer.keys.identity.sik.public,
            peer.address,
            envelope,
        )

    def snapshot(self) -> tuple[bytes | str, ...]:
        return (
            *(r.serialize() for r in self.records.values() if r.sessions()),
            *sorted(self.keys.opks),
        )


def device(user: str, name: str = "phone") -> Device:
    entropy = SeededEntropy(f"{user}:{name}")
    return Device(user, name, DeviceKeys.generate(entropy, opk_count=5), entropy)


@pytest.mark.cites("SPEC §2 r8", "SPEC §2 r9")
def test_smx1_is_resent_until_the_first_reply_and_a_lost_first_message_is_recovered() -> None:
    alice, bob = device("alice"), device("bob")
    alice.start(bob, "opk-2")
    lost = alice.send(bob, b"one")
    second = alice.send(bob, b"two")
    third = alice.send(bob, b"three")
    assert all(is_smx1(e) for e in (lost, second, third))
    assert bob.receive(alice, second) == b"two"
    assert "opk-2" not in bob.keys.opks  # deleted after use
    assert bob.receive(alice, third) == b"three"  # same EK_A: the session is reused
    assert len(bob.record(alice).sessions()) == 1
    assert alice.receive(bob, bob.send(alice, b"reply")) == b"reply"
    assert is_drv1(alice.send(bob, b"four"))  # the reply arrived: no more SMX1
    assert bob.receive(alice, lost) == b"one"  # the lost first message, late


@pytest.mark.cites("SPEC §2 r9", "SPEC §3 r8")
def test_replayed_smx1_fails() -> None:
    alice, bob = device("alice"), device("bob")
    alice.start(bob, "opk-0")
    first = alice.send(bob, b"hello")
    assert bob.receive(alice, first) == b"hello"
    with pytest.raises(DuplicateMessage):
        bob.receive(alice, first)
    bob.records.clear()  # the session is gone (reinstall, eviction): the OPK is gone too
    with pytest.raises(UnknownPrekey):
        bob.receive(alice, first)


@pytest.mark.cites("SPEC §2 r6")
def test_forged_smx1_burns_no_opk_and_changes_nothing() -> None:
    alice, bob = device("alice"), device("bob")
    alice.start(bob, "opk-1")
    envelope = bytearray(alice.send(bob, b"hello"))
    envelope[-1] ^= 1
    before = bob.snapshot()
    with pytest.raises(DecryptionFailed):
        bob.receive(alice, bytes(envelope))
    assert bob.snapshot() == before and "opk-1" in bob.keys.opks


@pytest.mark.cites("SPEC §2 r6")
@settings(max_examples=60, deadline=None)
@given(st.data())
def test_any_single_byte_mutation_or_truncation_of_smx1_changes_nothing(
    data: st.DataObject,
) -> None:
    alice, bob = device("alice"), device("bob")
    alice.start(bob, "opk-1")
    envelope = alice.send(bob, b"hello")
    if data.draw(st.booleans()):
        bad = envelope[: data.draw(st.integers(0, len(envelope) - 1))]
    else:
        mutated = bytearray(envelope)
        position = data.draw(st.integers(0, len(envelope) - 1))
        mutated[position] ^= data.draw(st.integers(1, 255))
        bad = bytes(mutated)
    before = bob.snapshot()
    with pytest.raises(ProtocolError) as info:
        bob.receive(alice, bad)
    assert info.value.name in {
        "MalformedEnvelope",
        "UnsupportedVersion",
        "DecryptionFailed",
        "UnknownPrekey",
        "InvalidKey",
    }
    assert bob.snapshot() == before
    assert bob.receive(alice, envelope) == b"hello"


@pytest.mark.cites("SPEC §4 r2")
def test_simultaneous_initiation_converges() -> None:
    alice, bob = device("alice"), device("bob")
    alice.start(bob, "opk-0")
    bob.start(alice, "opk-0")
    from_alice = alice.send(bob, b"hi bob")
    from_bob = bob.send(alice, b"hi alice")
    assert bob.receive(alice, from_alice) == b"hi bob"
    assert alice.receive(bob, from_bob) == b"hi alice"
    for i in range(4):
        assert bob.receive(alice, alice.send(bob, b"a%d" % i)) == b"a%d" % i
        assert alice.receive(bob, bob.send(alice, b"b%d" % i)) == b"b%d" % i
    a_current = alice.record(bob).current
    b_current = bob.record(alice).current
    assert a_current is not None and b_current is not None
    assert a_current.ratchet.digest() == b_current.ratchet.digest()


@pytest.mark.cites("SPEC §4 r3", "SPEC §4 r4")
def test_reset_archives_only_for_the_current_sending_key() -> None:
    alice, bob = device("alice"), device("bob")
    alice.start(bob)
    envelope = alice.send(bob, b"x")
    bob.receive(alice, envelope)
    alice.receive(bob, bob.send(alice, b"y"))
    stale = alice.send(bob, b"z")  # current sending key
    forged = session_cipher.encode_reset(bytes(32))
    assert not session_cipher.handle_reset(alice.record(bob), forged)
    reset = session_cipher.reset_for_undecryptable(stale)
    assert reset is not None
    assert session_cipher.handle_reset(alice.record(bob), reset)
    assert alice.record(bob).current is None
    with pytest.raises(NoSession):
        alice.send(bob, b"needs a new bundle")
    assert not session_cipher.handle_reset(alice.record(bob), reset)  # replayed: ignored


@pytest.mark.cites("SPEC §4 r1")
def test_archive_is_bounded_and_records_round_trip() -> None:
    alice, bob = device("alice"), device("bob")
    bob.keys.generate_opks(bob.entropy, 50)
    for i in range(MAX_ARCHIVED_SESSIONS + 5):
        alice.start(bob, f"opk-{i}")
    record = alice.record(bob)
    assert len(record.archived) == MAX_ARCHIVED_SESSIONS
    data = record.serialize()
    assert SessionRecord.parse(data).serialize() == data
    alice.send(bob, b"m")
    data = record.serialize()
    reloaded = SessionRecord.parse(data)
    assert reloaded.serialize() == data
    bob.records[alice.address] = SessionRecord()
    assert bob.receive(alice, session_cipher.encrypt(reloaded, b"after reload", alice.entropy))


@pytest.mark.cites("SPEC §2 r7")
def test_identity_store_pins_on_first_use() -> None:
    store = IdentityStore()
    first, second = RemoteIdentity(b"a" * 32, b"b" * 32), RemoteIdentity(b"c" * 32, b"b" * 32)
    assert not store.check("alice:phone", first)
    assert not store.check("alice:phone", first)
    with pytest.raises(UntrustedIdentity):
        store.check("alice:phone", second)
    assert store.check("alice:phone", second, accept_change=True)
