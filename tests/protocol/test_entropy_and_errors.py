"""Injected randomness (no hidden sources) and the SPEC §5 error vocabulary."""

from __future__ import annotations

import pytest

from semafore.protocol.entropy import EntropyExhausted, ScriptedEntropy, SeededEntropy
from semafore.protocol.errors import CANONICAL_ERRORS, MalformedEnvelope, ProtocolError

SPEC_5_NAMES = {
    "MalformedEnvelope",
    "UnsupportedVersion",
    "InvalidSignature",
    "InvalidKey",
    "DecryptionFailed",
    "DuplicateMessage",
    "TooManySkipped",
    "UnknownPrekey",
    "UntrustedIdentity",
    "NoSession",
    "Unsupported",
}


@pytest.mark.cites("SPEC §5 r1")
def test_canonical_errors_are_exactly_spec_5() -> None:
    assert set(CANONICAL_ERRORS) == SPEC_5_NAMES
    for name, cls in CANONICAL_ERRORS.items():
        assert cls.name == name and issubclass(cls, ProtocolError)


@pytest.mark.cites("SPEC §5 r2")
def test_errors_carry_field_and_detail() -> None:
    error = MalformedEnvelope("L1 = 0 outside 1..255", field="spk_key_id_length")
    assert (error.name, error.field) == ("MalformedEnvelope", "spk_key_id_length")
    assert "spk_key_id_length" in str(error)


def test_scripted_entropy_hands_out_values_per_purpose_in_order() -> None:
    entropy = ScriptedEntropy({"nonce": [b"a" * 12, b"b" * 12], "ratchet_key": [b"k" * 32]})
    assert entropy.random_bytes(12, "nonce") == b"a" * 12
    assert entropy.random_bytes(32, "ratchet_key") == b"k" * 32
    assert entropy.random_bytes(12, "nonce") == b"b" * 12
    with pytest.raises(EntropyExhausted) as info:
        entropy.random_bytes(12, "nonce")
    assert info.value.field == "nonce"
    with pytest.raises(EntropyExhausted):
        ScriptedEntropy({"nonce": [b"short"]}).random_bytes(12, "nonce")


def test_seeded_entropy_is_reproducible_and_streams_are_independent() -> None:
    a, b = SeededEntropy("seed"), SeededEntropy("seed")
    assert [a.random_bytes(40, "nonce") for _ in range(3)] == [
        b.random_bytes(40, "nonce") for _ in range(3)
    ]
    c = SeededEntropy("seed")
    c.random_bytes(12, "ratchet_key")  # another purpose does not shift the nonce stream
    assert c.random_bytes(40, "nonce") == SeededEntropy("seed").random_bytes(40, "nonce")
    assert SeededEntropy("seed").fork("alice").random_bytes(32, "x") != SeededEntropy(
        "seed"
    ).fork("bob").random_bytes(32, "x")
