"""Byte layouts, checked at every offset: a truncation names the field it falls in.

Each format is written down here once as the ordered list of its fields and their sizes —
SMX1 and DR_V1 as SPEC §2/§3 draw them, the persisted device keys, ratchet state and session
record as their serialisers document them (SPEC §6) — and the parser must agree at every
possible cut: the error names the field that the cut falls inside, and the full input
parses. This pins every bound and every field name of the parsers at once, which the
mutation run (docs/mutation.md) showed the property tests left open: they only check that
*some* field is named.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from semafore.protocol import frame, smx1
from semafore.protocol.entropy import SeededEntropy
from semafore.protocol.errors import MalformedEnvelope, MalformedState, ProtocolError
from semafore.protocol.keys import (
    DeviceKeys,
    OneTimePrekey,
    parse_device_keys,
    serialize_device_keys,
)
from semafore.protocol.primitives import X25519KeyPair
from semafore.protocol.ratchet import MAX_PREVIOUS_CHAINS, MAX_SKIPPED_KEYS, RatchetState
from semafore.protocol.session import Bootstrap, Role, Session, SessionRecord

Layout = list[tuple[str, int]]


def field_at_each_cut(layout: Layout) -> list[str]:
    """For every cut 0..len-1, the field whose bytes the cut falls inside."""
    return [name for name, size in layout for _ in range(size)]


def fields_named(
    parse: Callable[[bytes], object], data: bytes, error: type[ProtocolError]
) -> list[str]:
    named = []
    for cut in range(len(data)):
        with pytest.raises(error) as info:
            parse(data[:cut])
        assert info.value.field is not None, cut
        named.append(info.value.field)
    parse(data)  # the whole input is well formed
    return named


def _key_id(field: str, key_id: str) -> Layout:
    """A persisted key id: ``u8 len || UTF-8``, both parts named by the same field."""
    return [(field, 1 + len(key_id.encode()))]


# -- wire formats (SPEC §2, §3) --------------------------------------------------------------


def test_smx1_fields_at_every_offset() -> None:
    data = smx1.seal(bytes(32), b"ad", bytes(range(32)), "spk-ü", "o", bytes(12), b"")
    layout = [
        ("magic", 4),
        ("flags", 1),
        ("ephemeral", 32),
        ("spk_key_id_length", 2),
        ("spk_key_id", 6),
        ("opk_key_id_length", 2),
        ("opk_key_id", 1),
        ("nonce", 12),
        ("ciphertext", 16),
    ]
    assert fields_named(smx1.parse, data, MalformedEnvelope) == field_at_each_cut(layout)


def test_smx1_without_opk_fields_at_every_offset() -> None:
    data = smx1.seal(bytes(32), b"ad", bytes(range(32)), "s" * 255, None, bytes(12), b"")
    layout = [
        ("magic", 4),
        ("flags", 1),
        ("ephemeral", 32),
        ("spk_key_id_length", 2),
        ("spk_key_id", 255),
        ("opk_key_id_length", 2),
        ("nonce", 12),
        ("ciphertext", 16),
    ]
    assert fields_named(smx1.parse, data, MalformedEnvelope) == field_at_each_cut(layout)


def test_drv1_fields_at_every_offset() -> None:
    data = frame.encode_header(bytes(range(32)), 7, 9, bytes(12)) + bytes(16)
    layout = [("magic", 4), ("ratchet_key", 32), ("pn", 4), ("n", 4), ("nonce", 12)]
    layout.append(("ciphertext", 16))
    assert fields_named(frame.parse, data, MalformedEnvelope) == field_at_each_cut(layout)
    parsed = frame.parse(data)
    assert (parsed.pn, parsed.n, parsed.header) == (7, 9, data[:56])


# -- persisted state (SPEC §6) ----------------------------------------------------------------


def test_device_keys_fields_at_every_offset() -> None:
    entropy = SeededEntropy("layout")
    keys = DeviceKeys.generate(entropy, opk_count=1)
    keys.rotate_spk(entropy)
    data = serialize_device_keys(keys)
    spk = [("spk.private", 32), ("spk.public", 32), ("spk.signature", 64)]
    layout = [
        ("magic", 3),
        ("version", 1),
        ("identity", 64),  # IK.priv, SIK.seed: a failure to load either is the identity's
        ("next_opk_index", 4),
        ("next_spk_index", 4),
        *_key_id("spk.key_id", "spk-1"),
        *spk,
        ("previous_spks.count", 1),
        *_key_id("spk.key_id", "spk-0"),
        *spk,
        ("opks.count", 2),
        *_key_id("opk.key_id", "opk-0"),
        ("opk.private", 32),
        ("opk.public", 32),
    ]
    named = fields_named(parse_device_keys, data, MalformedState)
    assert named == field_at_each_cut(layout)
    loaded = parse_device_keys(data)
    assert (loaded.next_opk_index, loaded.next_spk_index) == (1, 2)
    assert list(loaded.previous_spks) == ["spk-0"]


def _ratchet_state() -> RatchetState:
    return RatchetState(
        rk=b"\x01" * 32,
        ad=b"associated",
        dhs=X25519KeyPair(b"\x02" * 32, b"\x03" * 32),
        dhr=b"\x04" * 32,
        cks=b"\x05" * 32,
        ckr=b"\x06" * 32,
        ns=7,
        nr=8,
        pn=9,
        skipped={(b"\x07" * 32, 3): b"\x08" * 32},
        previous={b"\x09" * 32: 4},
    )


RATCHET_LAYOUT: Layout = [
    ("magic", 3),
    ("version", 1),
    ("rk", 32),
    ("dhs.private", 32),
    ("dhs.public", 32),
    ("flags", 1),
    ("dhr", 32),
    ("cks", 32),
    ("ckr", 32),
    ("counters", 12),
    ("ad.length", 2),
    ("ad", len(b"associated")),
    ("previous.count", 1),
    ("previous.key", 32),
    ("previous.n", 4),
    ("skipped.count", 2),
    ("skipped.key", 32),
    ("skipped.n", 4),
    ("skipped.mk", 32),
]


def test_ratchet_state_fields_at_every_offset() -> None:
    state = _ratchet_state()
    data = state.serialize()
    assert fields_named(RatchetState.parse, data, MalformedState) == field_at_each_cut(
        RATCHET_LAYOUT
    )
    loaded = RatchetState.parse(data)
    assert (loaded.ns, loaded.nr, loaded.pn, loaded.ad) == (7, 8, 9, b"associated")
    assert (loaded.dhr, loaded.cks, loaded.ckr) == (b"\x04" * 32, b"\x05" * 32, b"\x06" * 32)
    assert loaded.skipped == state.skipped
    assert loaded.previous == state.previous


@pytest.mark.parametrize("flags", range(8))
def test_ratchet_state_flags_say_which_chain_keys_follow(flags: int) -> None:
    state = _ratchet_state()
    state.dhr = b"\x04" * 32 if flags & 1 else None
    state.cks = b"\x05" * 32 if flags & 2 else None
    state.ckr = b"\x06" * 32 if flags & 4 else None
    data = state.serialize()
    assert data[100] == flags
    loaded = RatchetState.parse(data)
    assert (loaded.dhr, loaded.cks, loaded.ckr) == (state.dhr, state.cks, state.ckr)


def _session(bootstrap: Bootstrap | None, role: Role = Role.RESPONDER) -> Session:
    return Session(_ratchet_state(), role, b"\x0a" * 32, bootstrap)


def _session_layout(spk: str | None = None, opk: str | None = None) -> Layout:
    layout = [("session.role", 1), ("session.base_key", 32), ("session.bootstrap", 1)]
    if spk is not None:
        layout += [("bootstrap.sk", 32), *_key_id("bootstrap.spk_key_id", spk)]
        layout += [("bootstrap.opk_key_id", 1 + len((opk or "").encode()))]
    ratchet = sum(size for _, size in RATCHET_LAYOUT)
    return [*layout, ("session.ratchet.length", 4), ("session.ratchet", ratchet)]


def test_session_record_fields_at_every_offset() -> None:
    record = SessionRecord(
        _session(Bootstrap(b"\x0b" * 32, "spk-7", "opk-ü"), Role.INITIATOR),
        [_session(None), _session(Bootstrap(b"\x0c" * 32, "s", None))],
    )
    data = record.serialize()
    layout = [
        ("record.magic", 3),
        ("record.version", 1),
        ("record.has_current", 1),
        ("record.count", 1),
        *_session_layout("spk-7", "opk-ü"),
        *_session_layout(),
        *_session_layout("s"),
    ]
    assert fields_named(SessionRecord.parse, data, MalformedState) == field_at_each_cut(layout)
    assert data[3:6] == bytes((1, 1, 3))
    loaded = SessionRecord.parse(data)
    assert loaded.serialize() == data
    assert loaded.current is not None and loaded.current.role is Role.INITIATOR
    assert loaded.current.bootstrap == Bootstrap(b"\x0b" * 32, "spk-7", "opk-ü")
    assert [s.bootstrap for s in loaded.archived] == [None, Bootstrap(b"\x0c" * 32, "s", None)]


def test_a_record_without_current_session_keeps_every_session_archived() -> None:
    record = SessionRecord(None, [_session(None), _session(None)])
    data = record.serialize()
    assert data[3:6] == bytes((1, 0, 2))
    loaded = SessionRecord.parse(data)
    assert loaded.current is None
    assert len(loaded.archived) == 2
    assert loaded.serialize() == data


@pytest.mark.parametrize(
    ("has_current", "count", "ok"),
    [
        (0, 0, True),
        (1, 1, True),
        (0, 41, True),
        (1, 41, True),
        (1, 0, False),
        (0, 42, False),
        (2, 2, False),
    ],
)
def test_record_session_counts_are_bounded_by_the_archive(
    has_current: int, count: int, ok: bool
) -> None:
    """SPEC §4: one current and up to 40 archived sessions per remote device."""
    session = _session(None).serialize()
    data = b"SFS\x01" + bytes((has_current, count)) + session * count
    if ok:
        loaded = SessionRecord.parse(data)
        assert len(loaded.sessions()) == count
        assert (loaded.current is not None) == bool(has_current)
    else:
        with pytest.raises(MalformedState) as info:
            SessionRecord.parse(data)
        assert info.value.field == "record.count"


def test_device_keys_counters_and_opk_count_use_their_whole_unsigned_range() -> None:
    """``u32 next_opk | u32 next_spk`` and ``u16 n opks``: values past the signed range load."""
    keys = DeviceKeys.generate(SeededEntropy("ranges"))
    keys.next_opk_index, keys.next_spk_index = 2**32 - 1, 2**31
    shared = X25519KeyPair(b"\x01" * 32, b"\x02" * 32)  # one pair under many ids: cheap
    keys.opks = {f"opk-{i}": OneTimePrekey(f"opk-{i}", shared) for i in range(2**15 + 1)}
    data = serialize_device_keys(keys)
    loaded = parse_device_keys(data)
    assert (loaded.next_opk_index, loaded.next_spk_index) == (2**32 - 1, 2**31)
    assert len(loaded.opks) == 2**15 + 1
    assert serialize_device_keys(loaded) == data


def test_smx1_key_ids_of_the_maximum_255_bytes_parse() -> None:
    data = smx1.seal(bytes(32), b"ad", bytes(32), "s" * 255, "o" * 255, bytes(12), b"")
    parsed = smx1.parse(data)
    assert (parsed.spk_key_id, parsed.opk_key_id) == ("s" * 255, "o" * 255)


def test_persisted_ratchet_state_may_hold_exactly_the_protocols_bounds() -> None:
    """SPEC §3: 2000 skipped keys and 5 retired chains are allowed; one more is refused."""
    state = _ratchet_state()
    state.skipped = {(b"\x07" * 32, n): b"\x08" * 32 for n in range(MAX_SKIPPED_KEYS)}
    state.previous = {bytes((i,)) * 32: i for i in range(MAX_PREVIOUS_CHAINS)}
    loaded = RatchetState.parse(state.serialize())
    assert (len(loaded.skipped), len(loaded.previous)) == (MAX_SKIPPED_KEYS, MAX_PREVIOUS_CHAINS)
    state.skipped[(b"\x07" * 32, MAX_SKIPPED_KEYS)] = b"\x08" * 32
    with pytest.raises(MalformedState) as info:
        RatchetState.parse(state.serialize())
    assert info.value.field == "skipped"
