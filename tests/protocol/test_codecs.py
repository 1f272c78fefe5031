"""SPEC §2/§3 framing: SMX1 and DR_V1 parse/encode, every field named on failure."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from semafore.protocol import frame, smx1
from semafore.protocol.errors import MalformedEnvelope, ProtocolError, UnsupportedVersion

EK = bytes(range(32))
NONCE = bytes(range(12))
CT = bytes(20)

key_ids = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=60).filter(
    lambda s: len(s.encode()) <= 255
)


def _smx1(spk: str = "spk-1", opk: str | None = "opk-7") -> bytes:
    return smx1.encode(smx1.Smx1Envelope(EK, spk, opk, NONCE, CT))


@pytest.mark.cites("SPEC §2 r5")
@given(key_ids, st.none() | key_ids, st.binary(min_size=16, max_size=80))
def test_smx1_round_trip(spk: str, opk: str | None, ct: bytes) -> None:
    env = smx1.Smx1Envelope(EK, spk, opk, NONCE, ct)
    assert smx1.parse(smx1.encode(env)) == env


@given(
    st.binary(min_size=32, max_size=32),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
    st.binary(min_size=16, max_size=64),
)
@pytest.mark.cites("SPEC §3 r3")
def test_drv1_round_trip(key: bytes, pn: int, n: int, ct: bytes) -> None:
    data = frame.encode_header(key, pn, n, NONCE) + ct
    parsed = frame.parse(data)
    assert (parsed.ratchet_key, parsed.pn, parsed.n, parsed.nonce, parsed.ciphertext) == (
        key,
        pn,
        n,
        NONCE,
        ct,
    )
    assert parsed.header + parsed.ciphertext == data


@pytest.mark.cites("SPEC §5 r1")
@given(st.binary(max_size=400))
def test_arbitrary_bytes_raise_only_canonical_errors(data: bytes) -> None:
    for parse in (smx1.parse, frame.parse):
        try:
            parse(data)
        except ProtocolError as exc:
            assert exc.name in ("MalformedEnvelope", "UnsupportedVersion")
            assert exc.field


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (b"SMX", "magic"),
        (b"XXXX" + bytes(80), "magic"),
        (b"SMX1\x02" + bytes(80), "flags"),
        (b"SMX1\x01" + bytes(10), "ephemeral"),
        (b"SMX1\x01" + EK + b"\x00", "spk_key_id_length"),
        (b"SMX1\x01" + EK + b"\x00\x00" + bytes(60), "spk_key_id_length"),
        (b"SMX1\x01" + EK + b"\x01\x00" + bytes(60), "spk_key_id_length"),
        (b"SMX1\x01" + EK + b"\x00\x09abc", "spk_key_id"),
        (b"SMX1\x00" + EK + b"\x00\x01a\x00\x01b" + bytes(40), "opk_key_id_length"),
        (b"SMX1\x01" + EK + b"\x00\x01a\x00\x00" + bytes(40), "opk_key_id_length"),
        (b"SMX1\x01" + EK + b"\x00\x01a\x00\x05bc", "opk_key_id"),
        (b"SMX1\x01" + EK + b"\x00\x01\xff\x00\x01b" + bytes(40), "spk_key_id"),
        (b"SMX1\x00" + EK + b"\x00\x01a\x00\x00" + bytes(5), "nonce"),
        (b"SMX1\x00" + EK + b"\x00\x01a\x00\x00" + bytes(12 + 15), "ciphertext"),
    ],
)
@pytest.mark.cites("SPEC §5 r2")
def test_smx1_names_the_field(data: bytes, field: str) -> None:
    with pytest.raises(MalformedEnvelope) as info:
        smx1.parse(data)
    assert info.value.field == field


@pytest.mark.cites("SPEC §2 r5")
def test_smx1_truncated_at_every_offset_is_rejected() -> None:
    data = _smx1()
    for cut in range(len(data) - 16 + 1 - 1):
        with pytest.raises(MalformedEnvelope):
            smx1.parse(data[:cut])


@pytest.mark.cites("SPEC §5 r3")
def test_future_versions_are_unsupported_not_malformed() -> None:
    with pytest.raises(UnsupportedVersion):
        smx1.parse(b"SMX2" + _smx1()[4:])
    with pytest.raises(UnsupportedVersion):
        frame.parse(b"DRV2" + bytes(80))


@pytest.mark.parametrize(
    ("size", "field"),
    [(2, "magic"), (20, "ratchet_key"), (38, "pn"), (42, "n"), (50, "nonce"), (60, "ciphertext")],
)
@pytest.mark.cites("SPEC §5 r2")
def test_drv1_names_the_field(size: int, field: str) -> None:
    data = (frame.encode_header(EK, 1, 2, NONCE) + bytes(16))[:size]
    with pytest.raises(MalformedEnvelope) as info:
        frame.parse(data)
    assert info.value.field == field


@pytest.mark.cites("SPEC §3 r3")
def test_drv1_header_layout() -> None:
    header = frame.encode_header(EK, 7, 9, NONCE)
    assert header == b"DRV1" + EK + struct.pack(">II", 7, 9) + NONCE
