"""A secret cut by the end of a stream's block is reported whole (issue #12 item 3, docs/oracle.md
"Records, blocks, cross-record matches, memory"): the next block starts with the previous
block's last 64 KiB, so the whole value is contiguous there. The first block's partial match
used to claim the (location, secret) pair, and the whole match found with the overlap was
dropped as already seen: the report said "partial: 16 of 32 bytes" for a key written whole."""

from __future__ import annotations

import base64

import pytest

from semafore.oracle import Oracle, engine

KEY = bytes(range(7, 39))


@pytest.mark.parametrize("inside_first", [1, 8, 22, 40])  # bytes of the value before the cut
@pytest.mark.parametrize("filler", [b"*", b"a"])  # outside / inside the base64 alphabet
def test_a_value_cut_by_a_block_end_is_reported_whole(inside_first: int, filler: bytes) -> None:
    oracle = Oracle()
    oracle.register_key("the key", KEY)
    value = base64.b64encode(KEY)
    cut = engine.BLOCK_BYTES
    data = filler * (cut - inside_first) + value + filler * 1000
    scanner = oracle.scanner()
    scanner.add_stream("file", "f", [data[:cut], data[cut:]])
    hits = scanner.finish().hits
    at = f"f:byte {cut - inside_first}"
    assert [(h.matched, h.length) for h in hits if h.location == at] == [(32, 32)], hits
