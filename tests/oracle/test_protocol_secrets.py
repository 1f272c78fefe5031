"""The reference protocol reports every secret it draws or derives (issue #12 item 2): a
session set up by X3DH with messages both ways, out of order, reports every kind in
``KEY_KINDS``, each value as the state holds it; with no sink registered nothing is kept."""

from __future__ import annotations

from collections import defaultdict

from semafore.protocol import secrets
from semafore.protocol.entropy import SeededEntropy
from semafore.protocol.keys import DeviceKeys
from semafore.protocol.ratchet import message_key
from semafore.protocol.session import SessionRecord
from semafore.protocol.session_cipher import decrypt, encrypt, initiate_session


def _conversation(reported: dict[str, set[bytes]]
                  ) -> tuple[SessionRecord, SessionRecord, bytes]:
    entropy = SeededEntropy("secrets-hook")
    with secrets.reporting(lambda kind, value: reported[kind].add(value)):
        alice = DeviceKeys.generate(entropy.fork("alice"))
        bob = DeviceKeys.generate(entropy.fork("bob"), opk_count=2)
        bundle = bob.bundle("bob", "phone", opk_key_id=next(iter(bob.opks)))
        a_record, b_record = SessionRecord(), SessionRecord()
        a_record.install(initiate_session(alice.identity, "alice:phone", bundle, entropy))
        assert a_record.current is not None and a_record.current.bootstrap is not None
        sk = a_record.current.bootstrap.sk
        first = encrypt(a_record, b"hello bob", entropy)
        decrypt(b_record, bob, "bob:phone", alice.identity.ik.public, alice.identity.sik.public,
                "alice:phone", first)
        replies = [encrypt(b_record, f"reply {i}".encode(), entropy) for i in range(3)]
        for frame in (replies[2], replies[0]):  # out of order: one key is skipped
            decrypt(a_record, alice, "alice:phone", bob.identity.ik.public,
                    bob.identity.sik.public, "bob:phone", frame)
    return a_record, b_record, sk


def test_every_key_kind_is_reported_with_the_values_the_state_holds() -> None:
    reported: dict[str, set[bytes]] = defaultdict(set)
    a_record, b_record, sk = _conversation(reported)
    assert set(reported) == set(secrets.KEY_KINDS)
    for record in (a_record, b_record):
        session = record.current
        assert session is not None
        ratchet = session.ratchet
        assert ratchet.rk in reported["root key"]
        assert ratchet.dhs.private in reported["ratchet private"] | reported["SPK private"]
        for chain in (ratchet.cks, ratchet.ckr):
            assert chain is None or chain in reported["chain key"]
        for mk in ratchet.skipped.values():
            assert mk in reported["message key"]
            assert message_key(mk) in reported["AEAD key"]
    assert sk in reported["X3DH SK"]


def test_nothing_is_reported_without_a_sink_and_the_sink_is_removed_after() -> None:
    calls: list[str] = []
    with secrets.reporting(lambda kind, _value: calls.append(kind)):
        secrets.report("root key", b"x" * 32)
    secrets.report("root key", b"y" * 32)  # no sink: ignored
    assert calls == ["root key"]
