"""Streams (issue #12 item 3, docs/oracle.md "Records, blocks"): a file or log read block by
block is searched as one text — a secret or a raw identifier straddling a block boundary is
found, once, located by line — and a whole-file compressed log is decompressed as it is read."""

from __future__ import annotations

import base64
import gzip
import random
from pathlib import Path

import pytest

from semafore.oracle import Oracle, engine, file_stream


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "BLOCK_BYTES", 4 << 10)
    monkeypatch.setattr(engine, "OVERLAP_BYTES", 512)


def _log(lines: int, planted: dict[int, bytes]) -> bytes:
    rng = random.Random(4)
    out = []
    for n in range(1, lines + 1):
        out.append(planted.get(n, b'{"event":"deliver","h8":"%s"}' % rng.randbytes(4).hex()
                               .encode()))
    return b"\n".join(out) + b"\n"


def test_an_identifier_and_a_key_across_block_boundaries_are_found_once_by_line(
    small_blocks: None,
) -> None:
    key = random.Random(5).randbytes(32)
    o = Oracle()
    o.register_key("message key", key)
    o.register_identifier("device_id", "alice:phone")
    o.register_identifier("device_id", "bob:laptop")  # in the overlap the next block rereads
    log = _log(400, {131: b'{"device":"bob:laptop"}', 133: b'{"device":"alice:phone"}',
                     290: b'{"k":"' + base64.b64encode(key) + b'"}'})
    # blocks that cut through both planted lines
    cuts = [log.index(b"alice:phone") + 4, log.index(base64.b64encode(key)) + 20]
    pieces = [log[:cuts[0]], log[cuts[0]:cuts[1]], log[cuts[1]:]]
    report = o.scan_stream("log", "relay.log", iter(pieces))
    found = sorted((h.kind, h.location) for h in report.hits)
    assert found == [("identifier", "relay.log:line 131"), ("identifier", "relay.log:line 133"),
                     ("key", "relay.log:line 290")]


def test_a_gzipped_log_is_decompressed_as_it_is_read_and_the_chain_says_so(
    tmp_path: Path,
) -> None:
    key = random.Random(6).randbytes(32)
    path = tmp_path / "relay.log.gz"
    path.write_bytes(gzip.compress(_log(50_000, {49_000: b"key=" + key.hex().encode()})))
    blocks, prefix = file_stream(path, size=64 << 10)
    assert prefix == ("gzip",)
    assert max(len(b) for b in blocks) <= 64 << 10  # never inflated whole
    o = Oracle()
    o.register_key("k", key)
    blocks, prefix = file_stream(path)
    [hit] = o.scan_stream("log", str(path), blocks, prefix).hits
    assert hit.location == f"{path}:line 49000" and hit.encoding == "gzip → hex"
