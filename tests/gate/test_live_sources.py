"""The wire source of the live oracle, as a specification: what the senders handed to the relay
is scanned byte for byte, what the receivers fetched is matched by SHA-256 against it, and
every gap in that coverage is said out loud."""

from __future__ import annotations

import hashlib

from semafore.gate.live import SourceScan, _Observer, _wire_source, source_of


def observer() -> _Observer:
    return _Observer(lambda label, value: None, lambda kind, value: None)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_sent_envelopes_are_wire_chunks_and_matching_fetches_are_counted() -> None:
    obs = observer()
    obs.wire += [("m1 a:phone -> b:phone (sent by ref)", b"SMX1" + b"\x01" * 60),
                 ("m2 b:phone -> a:phone (sent by ref)", b"\x02" * 70)]
    obs.fetched += [("m1 fetched by b:phone (ref)", sha(b"SMX1" + b"\x01" * 60)),
                    ("m2 fetched by a:phone (ref)", sha(b"\x02" * 70))]
    scan = _wire_source(obs)
    assert [c.tier for c in scan.chunks] == ["wire", "wire"]
    assert scan.chunks[0].location == "m1 a:phone -> b:phone (sent by ref)"
    assert scan.parts["sent"] == "2 envelopes the senders handed to the relay (134 bytes)"
    assert scan.parts["fetched"].endswith("2 byte-identical (SHA-256) to a scanned one")
    assert scan.notes == [] and scan.errors == [] and scan.hits == []


def test_a_fetched_envelope_that_is_a_plaintext_is_a_hit_naming_the_delivery() -> None:
    obs = observer()
    plaintext = b"cnryabcdefghijklmnopqrstuvwxyz23 c1 m3 a:phone"
    obs.plaintexts[sha(plaintext)] = "ref->ref m3"
    obs.fetched.append(("c1-m3 from a:phone (delivery d-9) fetched by b:phone (ref)",
                        sha(plaintext)))
    scan = _wire_source(obs)
    assert scan.hits == [{
        "tier": "wire", "location": "fetched c1-m3 from a:phone (delivery d-9) fetched by "
        "b:phone (ref)", "offset": 0, "encoding": "raw (SHA-256 of the whole fetched envelope)",
        "label": "ref->ref m3", "kind": "canary"}]


def test_an_unmatched_fetch_is_an_error_of_the_scan_not_a_note() -> None:
    """live.send lists every envelope it put on the wire (sync copies included), so a fetched
    envelope matching none was hidden by an adapter (its cell failed) or altered by the relay:
    its bytes went unscanned and the wire scan cannot pass."""
    obs = observer()
    obs.fetched.append(("m4 fetched by a:laptop (ref)", sha(b"unseen")))
    scan = _wire_source(obs)
    assert scan.notes == [] and scan.hits == []
    assert len(scan.errors) == 1 and scan.errors[0].startswith(
        "1 fetched envelope(s) match no listed one, so their bytes were not scanned")
    assert "m4 fetched by a:laptop (ref)" in scan.errors[0]
    assert scan.scanned and scan.missing == {"fetched": "1 fetched envelope(s) no live.send listed"}


def test_tiers_map_to_the_three_sources() -> None:
    assert [source_of(t) for t in ("wire", "log", "mongodb", "redis", "seaweedfs", "store",
                                   "file")] == ["wire", "logs"] + ["stores"] * 5


def test_a_source_says_why_it_was_not_read() -> None:
    whole = SourceScan("logs", missing={"logs": "not given (--relay-log)"})
    assert not whole.scanned and whole.why_not() == "not given (--relay-log)"
    part = SourceScan("stores", parts={"mongodb": "…"}, missing={"redis": "not given"})
    assert part.scanned and part.why_not() == "redis not given"
