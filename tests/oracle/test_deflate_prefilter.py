"""The vectorised raw-deflate prefilter (``decoders.deflate_plausible``, docs/oracle.md
"Cost") rejects only what zlib itself rejects: every real stream, whatever the compressor's
level and strategy, is plausible; a start it calls implausible is one zlib refuses within the
same bytes. And it is worth having: most random starts are rejected without a zlib call."""

from __future__ import annotations

import random
import zlib

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from semafore.oracle.decoders import PLAUSIBLE_BYTES, deflate_may_start, deflate_plausible
from semafore.oracle.matcher import fixed_huffman

STRATEGIES = (zlib.Z_DEFAULT_STRATEGY, zlib.Z_FILTERED, zlib.Z_HUFFMAN_ONLY, zlib.Z_RLE,
              zlib.Z_FIXED)


def _rows(streams: list[bytes]) -> np.ndarray:
    padded = [(s + bytes(PLAUSIBLE_BYTES))[:PLAUSIBLE_BYTES] for s in streams]
    return np.frombuffer(b"".join(padded), dtype=np.uint8).reshape(-1, PLAUSIBLE_BYTES)


@settings(max_examples=40, deadline=None)
@given(payloads=st.lists(st.binary(max_size=400) | st.text(max_size=400).map(str.encode),
                         min_size=64, max_size=64),
       level=st.integers(0, 9), strategy=st.sampled_from(STRATEGIES))
def test_every_real_raw_deflate_stream_is_plausible(payloads: list[bytes], level: int,
                                                    strategy: int) -> None:
    streams = []
    for payload in payloads:
        c = zlib.compressobj(level, zlib.DEFLATED, -15, 9, strategy)
        streams.append(c.compress(payload) + c.flush())
    assert deflate_plausible(_rows(streams)).all()


def test_an_implausible_start_is_one_zlib_refuses_and_most_random_starts_are() -> None:
    rng = random.Random(12)
    rows = _rows([rng.randbytes(PLAUSIBLE_BYTES) for _ in range(20_000)])
    plausible = deflate_plausible(rows)
    by_zlib = np.array([deflate_may_start(bytes(r)) for r in rows])
    assert not (by_zlib & ~plausible).any()  # never rejects what zlib accepts
    assert plausible.mean() < 0.1  # and spares zlib nine random starts in ten


def test_the_fixed_huffman_form_of_a_value_is_what_zlib_writes() -> None:
    """The matcher's deflate variants (matcher.fixed_huffman) are byte for byte the start of
    zlib's raw deflate of a value without repeats."""
    rng = random.Random(3)
    fixed = 0
    for _ in range(50):
        value = bytes(rng.sample(range(256), 32))  # no repeated 3-byte string
        c = zlib.compressobj(9, zlib.DEFLATED, -15)
        stream = c.compress(value) + c.flush()
        if stream[0] & 0b110 == 0b010:  # zlib chose a fixed block (it may store instead)
            assert stream.startswith(fixed_huffman(value))
            fixed += 1
    assert fixed >= 25
