"""The plaintext-absence oracle is not blind (SPEC §8): each kind of leak is injected and must
be found with the right tier, location and encoding; random data yields no hit."""

from __future__ import annotations

import base64
import gzip
import json
import random
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.oracle import (
    TIER_LOG,
    TIER_MONGODB,
    TIER_OBJECT_STORE,
    TIER_REDIS,
    TIER_WIRE,
    Chunk,
    Oracle,
    OracleError,
    canary,
    from_items,
    from_log_lines,
    from_wire,
    h8,
)

CANARY = canary(bytes(range(16)))
KEY = bytes(range(100, 132))  # stands for a 32-byte private key


@pytest.fixture
def oracle() -> Oracle:
    o = Oracle()
    o.register_canary("message m.1 (alice/phone -> bob)", CANARY)
    o.register_key("bob/phone SPK private", KEY)
    o.register_identifier("device_id", "dev-7f3a9c")
    o.register_identifier("sub", "user-alice-01")
    return o


def filler(n: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(n)


def only_hit(o: Oracle, *chunks: Chunk) -> tuple[str, str, str, str]:
    report = o.scan(chunks)
    assert len(report.hits) == 1, report.hits
    hit = report.hits[0]
    return hit.tier, hit.location, hit.encoding, hit.label


@pytest.mark.cites("SPEC §8 r4")
def test_plaintext_in_a_log_line(oracle: Oracle) -> None:
    lines = [
        '{"event": "send", "org_id": "acme"}',
        f'{{"event": "debug", "body": "hi {CANARY.decode()}"}}',
    ]
    assert only_hit(oracle, *from_log_lines(lines, name="relay.log")) == (
        TIER_LOG,
        "relay.log:line 2",
        "raw",
        "message m.1 (alice/phone -> bob)",
    )


@pytest.mark.cites("SPEC §8 r4")
@pytest.mark.parametrize("prefix", [b"", b"x", b"xy", b"xyz"])
@pytest.mark.parametrize("urlsafe", [False, True])
def test_base64_plaintext_mid_string_in_a_stored_document(
    oracle: Oracle, prefix: bytes, urlsafe: bool
) -> None:
    plaintext = prefix + b"Hello Bob, " + CANARY + b" see you"
    enc = (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(plaintext)
    doc = b'{"_id": "e1", "body": "' + enc.rstrip(b"=") + b'"}'
    tier, location, encoding, label = only_hit(oracle, Chunk(TIER_MONGODB, "sf.envelopes/e1", doc))
    assert (tier, location, label) == (
        TIER_MONGODB,
        "sf.envelopes/e1",
        "message m.1 (alice/phone -> bob)",
    )
    assert encoding.startswith("base64")


@pytest.mark.cites("SPEC §8 r4")
def test_private_key_in_a_redis_value(oracle: Oracle) -> None:
    value = filler(40) + KEY + filler(40, 2)
    assert only_hit(oracle, Chunk(TIER_REDIS, "redis:0:session:bob", value)) == (
        TIER_REDIS,
        "redis:0:session:bob",
        "raw",
        "bob/phone SPK private",
    )


@pytest.mark.cites("SPEC §8 r2")
def test_gzip_compressed_plaintext_in_an_object(oracle: Oracle) -> None:
    blob = filler(300) + gzip.compress(b"attachment text " + CANARY * 3) + filler(300, 3)
    report = oracle.scan([Chunk(TIER_OBJECT_STORE, "seaweedfs:/buckets/att/1", blob)])
    assert report.hits and all(h.encoding == "gzip" and h.offset == 300 for h in report.hits)
    assert report.hits[0].location == "seaweedfs:/buckets/att/1"


def test_zlib_inside_gzip_inside_base64(oracle: Oracle) -> None:
    inner = zlib.compress(b"k=" + KEY.hex().encode())
    outer = base64.b64encode(gzip.compress(b"prefix" + inner))
    report = oracle.scan([Chunk(TIER_WIRE, "#4 alice/phone up", b"data=" + outer)])
    # the zlib stream may sit stored (uncompressed) inside the gzip stream: then it is found
    # one level up, directly in the decoded base64
    [hit] = report.hits
    assert hit.encoding.startswith("base64 → ") and hit.encoding.endswith(" → hex")
    assert "zlib" in hit.encoding and hit.offset >= 5 and hit.label == "bob/phone SPK private"


def test_base64_json_carrying_a_base64_body_is_found_once(oracle: Oracle) -> None:
    content = json.dumps({"body": base64.b64encode(CANARY + b" hi").decode()}).encode()
    stored = json.dumps({"envelope": base64.b64encode(b"\x01\x02" + content).decode()})
    report = oracle.scan([Chunk(TIER_MONGODB, "sf.queue/7", stored.encode())])
    assert [(h.location, h.kind) for h in report.hits] == [("sf.queue/7", "canary")]
    assert report.hits[0].encoding.startswith("base64 → ")


def test_truncated_gzip_still_yields_what_inflated(oracle: Oracle) -> None:
    stream = gzip.compress(b"hello " * 200 + CANARY + b" world" * 20000)
    report = oracle.scan([Chunk(TIER_REDIS, "k", stream[: len(stream) * 2 // 3])])
    assert [h.encoding for h in report.hits] == ["gzip"]


@pytest.mark.parametrize(
    ("codec", "name"), [("utf-16-le", "utf-16le"), ("utf-16-be", "utf-16be"),
                        ("utf-32-le", "utf-32le"), ("utf-32-be", "utf-32be")]
)
@pytest.mark.cites("SPEC §8 r2")
def test_utf16_text(oracle: Oracle, codec: str, name: str) -> None:
    data = ("note: " + CANARY.decode()).encode(codec)
    assert only_hit(oracle, Chunk(TIER_MONGODB, "d", data))[2] == name


@pytest.mark.cites("SPEC §8 r2")
def test_hex_upper_and_lower(oracle: Oracle) -> None:
    report = oracle.scan(
        [
            Chunk(TIER_LOG, "l:1", b"key=" + KEY.hex().upper().encode()),
            Chunk(TIER_LOG, "l:2", b"key=" + KEY.hex().encode()),
        ]
    )
    assert [(h.location, h.encoding) for h in report.hits] == [
        ("l:1", "hex"),
        ("l:2", "hex"),
    ]


@pytest.mark.cites("SPEC §8 r2")
def test_json_escaped_non_ascii_bytes() -> None:
    o = Oracle()
    secret = bytes([0xE9, 0x00, 0x81]) + filler(20)  # not UTF-8: \u00e9 \u0000 \u0081 ...
    o.register_key("ratchet key", secret)
    doc = json.dumps({"dump": secret.decode("latin-1")}).encode()
    hits = o.scan([Chunk(TIER_MONGODB, "c/1", doc)]).hits
    assert [h.encoding for h in hits] == ["backslash escapes"]


def test_json_fully_unicode_escaped(oracle: Oracle) -> None:
    escaped = "".join(f"\\u{c:04x}" for c in CANARY).encode()
    assert (
        only_hit(oracle, Chunk(TIER_LOG, "l", b'{"m": "' + escaped + b'"}'))[2]
        == "backslash escapes"
    )


@pytest.mark.cites("SPEC §8 r3")
def test_offset_is_reported(oracle: Oracle) -> None:
    hit = oracle.scan([Chunk(TIER_WIRE, "w", b"\x00" * 77 + KEY)]).hits[0]
    assert hit.offset == 77 and hit.kind == "key"


def test_raw_identifier_in_a_log_line(oracle: Oracle) -> None:
    good = json.dumps({"event": "deliver", "device_id_h8": h8("dev-7f3a9c"), "org_id": "acme"})
    bad = json.dumps({"event": "deliver", "note": "to dev-7f3a9c"})
    report = oracle.scan(from_log_lines([good, bad]))
    assert [(h.location, h.kind, h.label) for h in report.hits] == [
        ("server.log:line 2", "identifier", "device_id 'dev-7f3a9c'")
    ]


def test_identifier_inside_a_longer_token_is_not_a_hit(oracle: Oracle) -> None:
    report = oracle.scan(from_log_lines(['{"x": "xdev-7f3a9cx", "y": "user-alice-012"}']))
    assert report.clean


def test_identifiers_are_only_a_log_concern(oracle: Oracle) -> None:
    # The database legitimately stores routing identifiers (seed §2.2); logs must not.
    report = oracle.scan([Chunk(TIER_MONGODB, "devices/1", b'{"device_id": "dev-7f3a9c"}')])
    assert report.clean


def test_identifier_as_malformed_h8_field_is_a_hit(oracle: Oracle) -> None:
    report = oracle.scan(from_log_lines(['{"sub_h8": "user-alice-01"}']))
    assert [h.label for h in report.hits] == ["sub 'user-alice-01'"]


@pytest.mark.cites("SPEC §8 r3")
def test_every_tier_is_counted(oracle: Oracle) -> None:
    class Item:
        def __init__(self, source: str, data: bytes) -> None:
            self.source, self.data = source, data

    chunks = [
        *from_items(TIER_REDIS, [Item("redis:0:a", b"12345")]),
        *from_wire([("#1 up", b"123")]),
        *from_log_lines(["x", "y"]),
    ]
    report = oracle.scan(chunks)
    assert report.bytes_by_tier == {TIER_REDIS: 5, TIER_WIRE: 3, TIER_LOG: 2}
    assert report.items_by_tier == {TIER_REDIS: 1, TIER_WIRE: 1, TIER_LOG: 2}


def test_no_false_positive_on_random_data() -> None:
    o = Oracle()
    rng = random.Random(7)
    for i in range(200):
        o.register_canary(f"m.{i}", canary(rng.randbytes(16)))
        o.register_key(f"k.{i}", rng.randbytes(32))
    noise = rng.randbytes(4 << 20)
    b64 = base64.b64encode(rng.randbytes(1 << 20))
    report = o.scan(
        [
            Chunk(TIER_MONGODB, "noise", noise),
            Chunk(TIER_LOG, "b64", b64),
            Chunk(TIER_REDIS, "gz", gzip.compress(rng.randbytes(1 << 16))),
        ]
    )
    assert report.clean


def test_values_too_short_to_distinguish_from_chance_are_refused() -> None:
    with pytest.raises(OracleError, match="at least 16"):
        Oracle().register_key("short", b"0123456789")
    with pytest.raises(OracleError, match="16 random bytes"):
        canary(b"abc")
    with pytest.raises(OracleError, match="unknown identifier kind"):
        Oracle().register_identifier("colour", "red-ish")


def test_scan_after_more_registrations_sees_them() -> None:
    o = Oracle()
    o.register_key("a", b"A" * 16)
    assert o.scan([Chunk(TIER_WIRE, "w", b"B" * 16)]).clean
    o.register_key("b", b"B" * 16)
    assert not o.scan([Chunk(TIER_WIRE, "w", b"B" * 16)]).clean


@settings(max_examples=60, deadline=None)
@given(
    value=st.binary(min_size=16, max_size=48),
    before=st.binary(max_size=7),
    after=st.binary(max_size=7),
    urlsafe=st.booleans(),
    pad=st.booleans(),
)
@pytest.mark.cites("SPEC §8 r2")
def test_base64_found_at_any_alignment(
    value: bytes, before: bytes, after: bytes, urlsafe: bool, pad: bool
) -> None:
    o = Oracle()
    o.register_key("v", value)
    enc = (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(before + value + after)
    if not pad:
        enc = enc.rstrip(b"=")
    assert not o.scan([Chunk(TIER_MONGODB, "d", b'"' + enc + b'"')]).clean
