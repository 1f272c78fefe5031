"""The radix decoder's pruning rules hide no leak (docs/oracle.md "Cost").

The decoder decodes each alphabet once and looks for nested content (text-like runs, wide
text, compression magics, raw deflate) at every bit shift through byte-pair tables, before
materialising any shift. Each rule is a necessary condition of what the exact decoders look
for; these tests check that against an unpruned decoder that materialises every shift and
runs the exact decoders over all of it, on random text with secrets planted through random
chains, and check the tables themselves bit for bit.
"""

from __future__ import annotations

import random
import string
import zlib
from collections.abc import Callable, Iterator

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from semafore.oracle import Chunk, Oracle, canary, radix
from semafore.oracle.decoders import (
    TEXT_RUN,
    TEXTY,
    Decoded,
    compressed,
    deflate_may_start,
    raw_deflate,
    wide_spans,
)
from semafore.oracle.leaks import encode


def _unpruned(name: str, stream: radix.U8, shifts: int, origin: Callable[[int, int], int],
              region_bits: radix.IntArray, alone: radix.Alone | None = None,
              ) -> Iterator[Decoded]:
    """Every shift materialised whole, the exact decoders over all of it, raw deflate tried
    at every region start without probes (and, where it fails, on the region decoded alone):
    what the pruned ``_nested`` must equal."""
    for s in range(8):
        if not shifts & (1 << s):
            continue
        whole = radix.shifted(stream, s, 0, len(stream))
        classes = whole.translate(TEXTY)
        at = classes.find(b"A" * TEXT_RUN)
        while at != -1:
            end = classes.find(b"\0", at)
            end = len(whole) if end == -1 else end
            yield Decoded(name, whole[at:end], origin(at, s))
            at = classes.find(b"A" * TEXT_RUN, end)
        for w in wide_spans(whole):
            yield Decoded(f"{name} → {w.name}", w.data, origin(w.start, s))
        for offset, kind, inner in compressed(whole):
            yield Decoded(f"{name} → {kind}", inner, origin(offset, s))
    for j, bit in enumerate(region_bits.tolist()):
        inflated = raw_deflate(radix.shifted(stream, bit % 8, bit // 8, len(stream)))
        if inflated is None and alone is not None:
            inflated = raw_deflate(alone(j))
        if inflated is not None:
            yield Decoded(f"{name} → deflate", inflated.data, origin(bit // 8, bit % 8),
                          expand=inflated.expand)


CHAIN_NAMES = ["hex", "base32", "base64", "base64-url", "z85", "ascii85", "binary",
               "base32-crockford", "gzip", "zlib", "deflate", "bz2", "utf-16le", "utf-32be",
               "json", "percent", "reversed"]
TEXT = st.text(alphabet=string.ascii_letters + string.digits + ' =:,{}"_-./', max_size=80)


def _hits(o: Oracle, records: list[Chunk]) -> set[tuple[str, str, int]]:
    return {(h.label, h.encoding, h.matched) for h in o.scan(records).hits}


@settings(max_examples=120, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(chain=st.lists(st.sampled_from(CHAIN_NAMES), min_size=1, max_size=3),
       seed=st.binary(min_size=32, max_size=32), is_key=st.booleans(), before=TEXT,
       after=TEXT, noise=st.binary(max_size=200))
def test_pruned_and_unpruned_decoders_find_the_same_hits(
    monkeypatch: pytest.MonkeyPatch, chain: list[str], seed: bytes, is_key: bool, before: str,
    after: str, noise: bytes,
) -> None:
    secret = seed if is_key else canary(seed[:16])
    o = Oracle()
    (o.register_key if is_key else o.register_canary)("s", secret)
    o.register_key("other", bytes(reversed(seed)))
    planted = before.encode() + encode(chain, secret) + after.encode()
    records = [Chunk("log", "line 1", planted), Chunk("store", "doc", noise + planted)]
    pruned = _hits(o, records)
    with monkeypatch.context() as patched:
        patched.setattr(radix, "_nested", _unpruned)
        unpruned = _hits(o, records)
    assert pruned == unpruned


def test_the_pair_tables_classify_every_shifted_byte() -> None:
    stream = np.frombuffer(random.Random(3).randbytes(4096) + bytes(64) + b"plain text " * 8,
                           dtype=np.uint8)
    pairs = (stream[:-1].astype(np.uint16) << 8) | stream[1:]
    texty = np.frombuffer(TEXTY, dtype=np.uint8) != 0
    for s in range(8):
        byte = np.frombuffer(radix.shifted(stream, s, 0, len(stream) - 1), dtype=np.uint8)
        assert np.array_equal((radix.TEXT_PAIRS[pairs] >> s) & 1, texty[byte].astype(np.uint8))
        assert np.array_equal((radix.ZERO_PAIRS[pairs] >> s) & 1, (byte == 0).astype(np.uint8))


@pytest.mark.parametrize("magic", radix.MAGIC_PREFIXES)
def test_every_magic_is_a_candidate_at_every_shift(magic: bytes) -> None:
    """A magic planted in random bytes, then read from each bit shift, passes both pair
    tables and the exact check at the byte and shift where it starts."""
    rng = random.Random(len(magic))
    body = rng.randbytes(40) + magic + rng.randbytes(40)
    for s in range(8):
        # the stream whose bytes read from bit s are ``body``
        bits = np.unpackbits(np.frombuffer(body, dtype=np.uint8))
        stream = np.packbits(np.concatenate((np.zeros(s, dtype=np.uint8), bits)))
        padded = np.concatenate((stream, np.zeros(1, dtype=np.uint8)))
        pairs = (padded[:-1].astype(np.uint16) << 8) | padded[1:]
        flags = radix.MAGIC_FIRST[pairs[:-1]] & radix.MAGIC_SECOND[pairs[1:]]
        assert (flags[40] >> s) & 1, (magic, s)
        assert 40 in radix._exact_magics(pairs, np.array([40]), s).tolist()


def test_a_deflate_probe_rejects_only_streams_that_fail() -> None:
    rng = random.Random(9)
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    good = c.compress(b"a leaked value, twice: a leaked value" * 3) + c.flush()
    assert deflate_may_start(good[:8]) and raw_deflate(good) is not None
    for _ in range(2000):
        junk = rng.randbytes(80)
        if not deflate_may_start(junk[:8]):
            assert raw_deflate(junk) is None
