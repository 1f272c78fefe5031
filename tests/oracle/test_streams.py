"""Streams (issue #12 item 3, docs/oracle.md "Records, blocks"): a file or log read block by
block is searched as one text — a secret or a raw identifier straddling a block boundary is
found, once, located by line — and a whole-file compressed log is decompressed as it is read."""

from __future__ import annotations

import base64
import gzip
import random
from pathlib import Path

import pytest

from semafore.oracle import Chunk, Oracle, engine, file_stream
from semafore.oracle.leaks import encode


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


def _frames(rng: random.Random, count: int) -> list[Chunk]:
    return [Chunk("wire", f"frame {i}", rng.randbytes(40).hex().encode()) for i in range(count)]


def test_an_escaped_leak_among_records_joined_back_to_back_is_located_in_its_record() -> None:
    """Store documents and wire frames are joined with nothing between them, so an escape
    line ends at the record: the hit names the frame that holds it (not the first frame of
    the block), and the other frames are not decoded again with it."""
    rng = random.Random(8)
    key = rng.randbytes(32)
    o = Oracle()
    o.register_key("k", key)
    frames = _frames(rng, 6)
    frames.insert(4, Chunk("wire", "frame leak", b"body: " + encode("quoted-printable", key)))
    hits = o.scan(frames).hits
    assert [(h.location, h.offset, h.encoding) for h in hits] == [
        ("frame leak", 0, "quoted-printable")]


def test_an_escaped_value_cut_into_three_records_is_decoded_whole() -> None:
    """The middle record holds no escape (the value's own letters): triggers this close
    still join one span, so all 32 bytes show, not two pieces of 15 and 14."""
    rng = random.Random(9)
    key = rng.randbytes(14).replace(b"a", b"\0") + b"abcdef" + rng.randbytes(12)
    escaped = encode("url", key)
    cut = escaped.index(b"abcdef")
    o = Oracle()
    o.register_key("k", key)
    frames = [*_frames(rng, 2), Chunk("wire", "frame a", b"v=" + escaped[:cut + 1]),
              Chunk("wire", "frame b", escaped[cut + 1:cut + 5]),
              Chunk("wire", "frame c", escaped[cut + 5:] + b";"), *_frames(rng, 2)]
    hits = o.scan(frames).hits
    assert [(h.location, h.matched) for h in hits] == [("frame a", 32)]


def test_an_escaped_value_whose_unescaped_head_is_in_the_record_before_is_decoded_whole(
) -> None:
    """JSON-escaped bz2: its magic ``BZh91AY&SY`` needs no escape, so a cut before the first
    escape leaves the magic in a record without a trigger; a boundary that close to a
    trigger does not end the escape line, so the stream still decompresses."""
    rng = random.Random(10)
    key = rng.randbytes(32)
    escaped = encode(["json", "bz2"], key)
    cut = escaped.index(b"\\")  # the magic and what follows it up to the first escape
    o = Oracle()
    o.register_key("k", key)
    frames = [*_frames(rng, 2), Chunk("wire", "frame a", b"v=" + escaped[:cut]),
              Chunk("wire", "frame b", escaped[cut:] + b";"), *_frames(rng, 2)]
    hits = o.scan(frames).hits
    assert [(h.location, h.matched, h.encoding) for h in hits] == [
        ("frame a", 32, "backslash escapes → bz2")]
