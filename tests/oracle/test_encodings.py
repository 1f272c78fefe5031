"""Every reversible encoding in the catalogue (semafore.oracle.leaks) is undone by the oracle,
alone and composed (issue #12 item 1): a canary and a random key, embedded mid-line, are
found whatever encoding or pair of encodings wrote them; the hit names the secret and a
decode chain; a partial leak (16 bytes of a key, 12 characters of a canary) is a hit, one
byte less is not."""

from __future__ import annotations

import random

import pytest

from semafore.oracle import Chunk, Oracle, canary
from semafore.oracle.leaks import ENCODERS, encode, parse_chain
from semafore.oracle.model import OracleError

RNG = random.Random(12)
CANARY = canary(RNG.randbytes(16))
KEY = RNG.randbytes(32)
# Upper- or lower-casing base64 destroys information: only the value itself can be compared
# case-insensitively under it (docs/oracle.md, "Out of reach").
LOSSY = {"base64-upper", "base64-lower"}  # only under nothing else


def oracle() -> Oracle:
    o = Oracle()
    o.register_canary("message m.1", CANARY)
    o.register_key("bob/phone message key", KEY)
    return o


def labels_found(o: Oracle, data: bytes) -> set[str]:
    line = b"2026-01-01T00:00:00Z WARN relay event=send detail=" + data + b" trace=7f3a"
    return {h.label for h in o.scan([Chunk("log", "relay.log:line 9", line)]).hits}


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_each_encoding_of_a_canary_and_a_key_is_found(name: str) -> None:
    o = oracle()
    assert labels_found(o, encode(name, CANARY)) == {"message m.1"}
    assert labels_found(o, encode(name, KEY)) == {"bob/phone message key"}


OUTER = sorted(set(ENCODERS) - LOSSY)


@pytest.mark.slow
@pytest.mark.parametrize("outer", OUTER)
def test_every_pair_of_encodings_of_a_key_is_found(outer: str) -> None:
    o = oracle()
    missed = [inner for inner in sorted(ENCODERS)
              if "bob/phone message key" not in labels_found(o, encode([outer, inner], KEY))]
    assert set(missed) <= KNOWN_HOLES.get(outer, set()) | MOJIBAKE_NESTED, missed


# docs/oracle.md "Out of reach": UTF-32 over UTF-32 of binary bytes (zero lanes mix), HTML
# references of HTML references, and the UTF-8 of Latin-1-decoded bytes nested in another
# encoding (found only where a text line carries it).
KNOWN_HOLES = {"utf-32le": {"utf-32le", "utf-32be"}, "utf-32be": {"utf-32le", "utf-32be"},
               "html": {"html"}}
MOJIBAKE_NESTED = {"latin-1-as-utf-8"}


def test_the_hit_names_the_decode_chain_outermost_first() -> None:
    [hit] = oracle().scan([Chunk("log", "l", b"x=" + encode("base64+gzip+utf-16le", CANARY))]).hits
    assert hit.encoding == "base64 → gzip → utf-16le"
    assert hit.location == "l" and hit.offset == 2 and hit.matched == hit.length == len(CANARY)


def test_partial_leaks_count_from_16_key_bytes_and_12_canary_characters() -> None:
    o = oracle()
    assert labels_found(o, KEY[5:21].hex().encode()) == {"bob/phone message key"}
    assert labels_found(o, KEY[5:20].hex().encode()) == set()
    assert labels_found(o, CANARY[9:21]) == {"message m.1"}
    assert labels_found(o, CANARY[9:20]) == set()
    [hit] = o.scan([Chunk("log", "l", KEY[:20])]).hits
    assert (hit.matched, hit.length) == (20, 32) and "partial: 20 of 32" in hit.encoding


def test_a_secret_split_across_consecutive_records_is_found() -> None:
    o = oracle()
    encoded = encode("base64+gzip", KEY)
    half = len(encoded) // 2
    records = [Chunk("log", "relay.log:line 1", b'{"m":"' + encoded[:half]),
               Chunk("log", "relay.log:line 2", encoded[half:] + b'"}')]
    whole = [(h.location, h.label) for h in o.scan(records).hits if h.matched == len(KEY)]
    assert whole == [("relay.log:line 1", "bob/phone message key")]


def test_an_unknown_encoding_is_refused_by_name() -> None:
    with pytest.raises(OracleError, match="unknown encoding 'rot13'") as caught:
        parse_chain("base64+rot13")
    assert caught.value.field == "leak"
