"""Properties of the oracle (issue #12 "Tests"):

- any chain of up to three reversible encodings over a random secret, embedded at a random
  offset in random text and split into consecutive records at random boundaries, is found;
- random binary, real AES-GCM ciphertexts and base64 of them give no hit;
- memory stays bounded whatever the stream's length (a generator of log lines).
"""

from __future__ import annotations

import base64
import itertools
import os
import random
import string
import tracemalloc
import zlib
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from semafore.oracle import Chunk, Oracle, canary, engine
from semafore.oracle.leaks import ENCODERS, encode
from semafore.protocol.primitives import aead_seal

# docs/oracle.md "Out of reach": lossy or ambiguous under anything else.
LOSSY = {"base64-upper", "base64-lower"}
# Nested only where a text line carries it (docs/oracle.md).
TOP_ONLY = {"latin-1-as-utf-8"}
WIDE = {"utf-16le", "utf-16be", "utf-32le", "utf-32be"}
RADIX = {"hex", "hex-upper", "hex-colon", "hex-spaced", "hex-0x", "base32", "base32-lower",
         "base32hex", "base32-crockford", "z-base32", "base64", "base64-url", "base64-mime",
         "base85", "ascii85", "z85", "binary"}
NAMES = sorted(ENCODERS)


def fits(chain: list[str]) -> bool:
    """The chains the oracle promises to undo (docs/oracle.md, "Decode rules" and "Out of
    reach"). Raw deflate of an encoded value (not of the value itself) right under a radix
    text has no magic and no fixed coding to match: it is found only where the radix text
    starts a region, and the random text glued before it here moves that start."""
    if any(n in LOSSY for n in chain[:-1]) or any(n in TOP_ONLY for n in chain[1:]):
        return False
    if any(a in RADIX and b == "deflate" and c not in ("raw", "reversed")
           for a, b, c in zip(chain, chain[1:], chain[2:], strict=False)):
        return False
    return sum(n in WIDE for n in chain) <= 1 and chain.count("html") <= 1


TEXT = st.text(alphabet=string.ascii_letters + string.digits + " =:,{}\"_-./", max_size=60)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chain=st.lists(st.sampled_from(NAMES), min_size=1, max_size=3), seed=st.binary(
    min_size=32, max_size=32), is_key=st.booleans(), before=TEXT, after=TEXT,
    cuts=st.lists(st.floats(0, 1), max_size=2))
def test_any_chain_of_up_to_three_encodings_is_found(
    chain: list[str], seed: bytes, is_key: bool, before: str, after: str, cuts: list[float],
) -> None:
    assume(fits(chain))
    o = Oracle()
    secret = seed if is_key else canary(seed[:16])
    # docs/oracle.md "Out of reach": a degenerate secret (e.g. all zero bytes) compresses
    # below the shortest radix text the oracle decodes; real keys and canaries are random
    assume(len(zlib.compress(secret, 9)) >= 16)
    (o.register_key if is_key else o.register_canary)("s", secret)
    stream = before.encode() + encode(chain, secret) + after.encode()
    bounds = sorted({0, len(stream), *(int(c * len(stream)) for c in cuts)})
    records = [Chunk("wire", f"frame {i}", stream[a:b])
               for i, (a, b) in enumerate(itertools.pairwise(bounds))]
    hits = o.scan(records).hits
    assert hits, chain
    assert max(h.matched for h in hits) >= min(len(secret), 16 if is_key else 12)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(outer=st.sampled_from(sorted(RADIX)), inner=st.sampled_from(NAMES),
       seed=st.binary(min_size=32, max_size=32), is_key=st.booleans(), after=TEXT)
def test_raw_deflate_of_an_encoded_value_under_a_radix_text_is_found_where_the_text_starts(
    outer: str, inner: str, seed: bytes, is_key: bool, after: str,
) -> None:
    """The one shape ``fits`` leaves out, where the oracle does promise it: the radix text
    opens the record and a space follows it (a base85 symbol glued after it would carry into
    the stream's last bytes; docs/oracle.md "Out of reach")."""
    chain = [outer, "deflate", inner]
    assume(inner not in LOSSY and inner not in TOP_ONLY)
    secret = seed if is_key else canary(seed[:16])
    assume(len(encode(chain[1:], secret)) >= 16)  # degenerate secrets: see "Out of reach"
    o = Oracle()
    (o.register_key if is_key else o.register_canary)("s", secret)
    hits = o.scan([Chunk("wire", "frame", encode(chain, secret) + b" " + after.encode())]).hits
    assert hits and max(h.matched for h in hits) >= min(len(secret), 16 if is_key else 12)


def _oracle_with(count: int, rng: random.Random) -> Oracle:
    o = Oracle()
    for i in range(count):
        o.register_canary(f"m.{i}", canary(rng.randbytes(16)))
        o.register_key(f"k.{i}", rng.randbytes(32))
    return o


def test_random_binary_and_real_ciphertexts_give_no_hit() -> None:
    rng = random.Random(2026)
    o = _oracle_with(300, rng)
    key = rng.randbytes(32)
    ciphertexts = [aead_seal(key, rng.randbytes(12), rng.randbytes(rng.randint(1, 2000)), b"ad")
                   for _ in range(300)]
    chunks = [Chunk("store", "noise", rng.randbytes(1 << 20)),
              *(Chunk("wire", f"#{i}", c) for i, c in enumerate(ciphertexts)),
              *(Chunk("log", f"relay.log:line {i}",
                      b'{"event":"deliver","body":"' + base64.b64encode(c) + b'"}')
                for i, c in enumerate(ciphertexts))]
    report = o.scan(chunks)
    assert report.clean, report.hits[:5]
    assert not report.truncated


def _peak_scanning(blocks: int, leaked: bytes) -> tuple[int, list[str]]:
    rng = random.Random(5)
    o = _oracle_with(50, rng)
    o.register_key("late", leaked)
    line = b'{"ts":1767225600,"event":"deliver","org_id":"acme","device_id_h8":"%s","n":7}\n'
    total = blocks * engine.BLOCK_BYTES

    def stream() -> Iterator[bytes]:
        produced = 0
        while produced < total:
            block = b"".join(line % os.urandom(4).hex().encode() for _ in range(100))
            produced += len(block)
            yield block
        yield b"key=" + leaked.hex().encode() + b"\n"

    tracemalloc.start()
    try:
        report = o.scan_stream("log", "big.log", stream())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sum(report.bytes_by_tier.values()) > total
    return peak, [f"{h.label}@{h.location.split(':')[0]}" for h in report.hits]


def test_memory_is_bounded_by_the_block_not_the_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    """Scanning a stream 8 times longer peaks no higher (traced allocations, within 25 %):
    memory is set by the block, not the stream (blocks shrunk to 32 KiB to keep the test
    small; docs/oracle.md has the 2 GB measurement). A scanner that kept the stream would
    add 1.75 MiB, about 70 % of the peak. The leak at the very end is still found."""
    monkeypatch.setattr(engine, "BLOCK_BYTES", 32 << 10)
    monkeypatch.setattr(engine, "OVERLAP_BYTES", 4 << 10)
    leaked = random.Random(6).randbytes(32)
    short, found_short = _peak_scanning(8, leaked)
    long, found_long = _peak_scanning(64, leaked)
    assert found_short == found_long == ["late@big.log"]
    assert long < short * 1.25, (short, long)
