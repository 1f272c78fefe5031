"""A device's whole state persists and reloads exactly, mid-conversation (SPEC §6)."""

from __future__ import annotations

import pytest

from semafore.client.device import Device, IdentityPolicy, PrekeyPolicy
from semafore.client.errors import MalformedClientState
from semafore.protocol.entropy import SeededEntropy
from semafore.protocol.errors import UntrustedIdentity


def pair(seed: str = "s") -> tuple[Device, Device, SeededEntropy, SeededEntropy]:
    ea, eb = SeededEntropy(seed + "a"), SeededEntropy(seed + "b")
    alice = Device.create("alice", "phone", ea, 0.0, opk_count=3)
    bob = Device.create("bob", "phone", eb, 0.0, opk_count=3)
    return alice, bob, ea, eb


def converse(alice: Device, bob: Device, ea: SeededEntropy, eb: SeededEntropy) -> None:
    bundle = bob.keys.bundle("bob", "phone", "opk-0")
    alice.start_session(bundle, ea, 1.0)
    bob.trust(alice.address, alice.keys.identity.ik.public, alice.keys.identity.sik.public, 1.0)
    assert bob.decrypt(alice.address, alice.encrypt(bob.address, b"hi", ea)) == b"hi"
    assert alice.decrypt(bob.address, bob.encrypt(alice.address, b"yo", eb)) == b"yo"
    alice.first_time_seen("bob/m1")


def test_state_round_trips_exactly_and_the_reloaded_device_keeps_talking() -> None:
    alice, bob, ea, eb = pair()
    converse(alice, bob, ea, eb)
    blob = alice.serialize()
    again = Device.parse(blob)
    assert again.serialize() == blob
    assert not again.first_time_seen("bob/m1")
    frame = again.encrypt(bob.address, b"after reload", ea)
    assert bob.decrypt(alice.address, frame) == b"after reload"
    assert "opk-0" not in bob.keys.opks  # consumed by the bootstrap (SPEC §2)
    bob_again = Device.parse(bob.serialize())
    assert bob_again.decrypt(alice.address, again.encrypt(bob.address, b"x", ea)) == b"x"


@pytest.mark.parametrize("cut", [0, 2, 3, 4, 10, 40, 100, -1])
def test_truncated_state_is_a_typed_error(cut: int) -> None:
    alice, bob, ea, eb = pair()
    converse(alice, bob, ea, eb)
    blob = alice.serialize()
    with pytest.raises(MalformedClientState):
        Device.parse(blob[:cut])


def test_bad_magic_version_and_trailing_bytes_are_rejected_naming_the_part() -> None:
    alice, *_ = pair()
    blob = alice.serialize()
    with pytest.raises(MalformedClientState) as bad_magic:
        Device.parse(b"XXX" + blob[3:])
    assert bad_magic.value.field == "magic"
    with pytest.raises(MalformedClientState) as bad_version:
        Device.parse(blob[:3] + b"\x09" + blob[4:])
    assert bad_version.value.field == "version"
    with pytest.raises(MalformedClientState):
        Device.parse(blob + b"\x00")


@pytest.mark.cites("SPEC §2 r7")
def test_identity_change_is_detected_and_policy_decides() -> None:
    alice, bob, ea, eb = pair()
    converse(alice, bob, ea, eb)
    other = Device.create("bob", "phone", SeededEntropy("reinstall"), 0.0, opk_count=1)
    new_ik, new_sik = other.keys.identity.ik.public, other.keys.identity.sik.public
    assert alice.trust(bob.address, new_ik, new_sik, 5.0)
    assert alice.identity_changes[-1].address == bob.address
    strict = Device.create("carol", "phone", SeededEntropy("c"), 0.0, policy=IdentityPolicy.STRICT)
    strict.trust(bob.address, bob.keys.identity.ik.public, bob.keys.identity.sik.public, 1.0)
    with pytest.raises(UntrustedIdentity):
        strict.trust(bob.address, new_ik, new_sik, 2.0)
    assert Device.parse(strict.serialize()).policy is IdentityPolicy.STRICT


@pytest.mark.cites("SPEC §4 r4")
def test_reset_naming_the_current_sending_key_archives_the_session_and_others_are_ignored() -> None:
    alice, bob, ea, eb = pair()
    converse(alice, bob, ea, eb)
    frame = alice.encrypt(bob.address, b"lost", ea)
    stranger = Device.create("bob", "phone", SeededEntropy("x"), 0.0)
    reset = stranger.reset_for(frame)  # what a device that lost its session sends back
    assert reset is not None
    assert not alice.handle_reset(bob.address, reset[:4] + bytes(32))  # forged: ignored
    assert alice.has_session(bob.address)
    assert alice.handle_reset(bob.address, reset)
    assert not alice.has_session(bob.address)


def test_prekey_policy_tops_up_below_low_water_and_rotates_when_due() -> None:
    alice, *_ = pair()
    policy = PrekeyPolicy(opk_batch=10, opk_low_water=4, spk_rotation_interval=100.0)
    assert alice.opks_to_upload(4, SeededEntropy("e"), policy) == []
    new = alice.opks_to_upload(3, SeededEntropy("e"), policy)
    assert len(new) == 7 and all(o.key_id in alice.keys.opks for o in new)
    assert not alice.spk_due(99.0, policy) and alice.spk_due(100.0, policy)
    old = alice.keys.spk.key_id
    alice.rotate_spk(SeededEntropy("r"), 100.0)
    assert alice.keys.spk.key_id != old and old in alice.keys.previous_spks
