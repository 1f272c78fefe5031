"""SPEC §6: persisted state is versioned, round-trips exactly, and old formats still load."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from semafore.protocol import session_cipher
from semafore.protocol.entropy import SeededEntropy
from semafore.protocol.errors import MalformedEnvelope, MalformedState
from semafore.protocol.keys import (
    DeviceKeys,
    bundle_from_dict,
    bundle_to_dict,
    parse_device_keys,
    serialize_device_keys,
)
from semafore.protocol.ratchet import RatchetState
from semafore.protocol.session import SessionRecord

FIXTURES = sorted((Path(__file__).resolve().parents[2] / "vectors").glob("session-state-v*.json"))


@pytest.mark.cites("SPEC §6 r6")
def test_there_is_a_fixture_per_released_format() -> None:
    assert [p.name for p in FIXTURES] == ["session-state-v1.json"]


@pytest.mark.cites("SPEC §6 r6")
@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_released_state_formats_still_load_and_decrypt(path: Path) -> None:
    fixture = json.loads(path.read_text())
    keys_bytes = bytes.fromhex(fixture["device_keys"])
    record_bytes = bytes.fromhex(fixture["record"])
    keys = parse_device_keys(keys_bytes)
    record = SessionRecord.parse(record_bytes)
    assert serialize_device_keys(keys) == keys_bytes
    assert record.serialize() == record_bytes
    ratchet = RatchetState.parse(bytes.fromhex(fixture["ratchet"]))
    assert ratchet.digest().hex() == fixture["digest"]
    remote = fixture["remote"]
    for item in fixture["frames"]:
        plaintext = session_cipher.decrypt(
            record,
            keys,
            fixture["local_address"],
            bytes.fromhex(remote["ik"]),
            bytes.fromhex(remote["sik"]),
            remote["address"],
            bytes.fromhex(item["envelope"]),
        )
        assert plaintext.hex() == item["plaintext"]


def test_device_keys_round_trip_after_rotation_and_use() -> None:
    entropy = SeededEntropy("device")
    keys = DeviceKeys.generate(entropy, opk_count=4)
    for _ in range(5):
        keys.rotate_spk(entropy)
    del keys.opks["opk-2"]
    data = serialize_device_keys(keys)
    loaded = parse_device_keys(data)
    assert serialize_device_keys(loaded) == data
    assert loaded.bundle("u", "d", "opk-3") == keys.bundle("u", "d", "opk-3")
    assert len(loaded.previous_spks) == DeviceKeys.MAX_PREVIOUS_SPKS


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_corrupt_persisted_state_raises_malformed_state(data: st.DataObject) -> None:
    fixture = json.loads(FIXTURES[0].read_text())
    kind = data.draw(st.sampled_from(["device_keys", "record", "ratchet"]))
    blob = bytes.fromhex(fixture[kind])
    cut = data.draw(st.integers(0, len(blob) - 1))
    parse = {
        "device_keys": parse_device_keys,
        "record": SessionRecord.parse,
        "ratchet": RatchetState.parse,
    }[kind]
    with pytest.raises(MalformedState) as info:
        parse(blob[:cut])
    assert info.value.field
    with pytest.raises(MalformedState):
        parse(blob + b"\x00")


def test_bundle_json_round_trip_and_field_errors() -> None:
    keys = DeviceKeys.generate(SeededEntropy("b"), opk_count=1)
    bundle = keys.bundle("alice", "phone", "opk-0")
    for enc, dec in ((bytes.hex, bytes.fromhex), (_b64, base64.b64decode)):
        assert bundle_from_dict(bundle_to_dict(bundle, enc), dec) == bundle
    doc = bundle_to_dict(bundle, bytes.hex)
    doc["spk"]["sig"] = "00"
    with pytest.raises(MalformedEnvelope) as info:
        bundle_from_dict(doc, bytes.fromhex)
    assert info.value.field == "spk.sig"
    del doc["ik"]
    with pytest.raises(MalformedEnvelope) as info:
        bundle_from_dict(doc, bytes.fromhex)
    assert info.value.field == "ik"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_repeated_entries_in_persisted_state_are_rejected() -> None:
    """Fuzz finding: repeats used to collapse silently, so load+save changed the bytes."""
    entropy = SeededEntropy("dupes")
    keys = DeviceKeys.generate(entropy, opk_count=2)
    data = serialize_device_keys(keys)
    first = data.index(b"\x05opk-0")
    second = data.index(b"\x05opk-1")
    dup = data[:second] + data[first:second] + data[second + (second - first) :]
    with pytest.raises(MalformedState) as info:
        parse_device_keys(dup)
    assert info.value.field == "opk.key_id"

    pair_state = _state_with_skipped_keys()
    body, count_at = pair_state
    entry = body[count_at + 2 : count_at + 2 + 68]
    repeated = body + entry
    repeated = (
        repeated[:count_at]
        + (int.from_bytes(body[count_at : count_at + 2]) + 1).to_bytes(2, "big")
        + repeated[count_at + 2 :]
    )
    with pytest.raises(MalformedState) as info:
        RatchetState.parse(repeated)
    assert info.value.field == "skipped.n"


def _state_with_skipped_keys() -> tuple[bytes, int]:
    from tests.protocol.conversation import new_pair

    pair = new_pair()
    frames = [pair.alice.encrypt(b"m", pair.entropy) for _ in range(3)]
    pair.bob.decrypt(frames[-1])
    data = pair.bob.serialize()
    count_at = len(data) - 2 * 68 - 2  # two skipped entries of 32 + 4 + 32 bytes
    assert int.from_bytes(data[count_at : count_at + 2]) == 2
    return data, count_at
