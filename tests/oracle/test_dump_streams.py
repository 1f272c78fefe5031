"""Store dumps reach the oracle one item at a time (issue #12 item 3, docs/oracle.md
"Records, blocks, cross-record matches, memory"): a :class:`~semafore.deploy.dumps.Spool`
keeps a dump on disk until the oracle runs, a stored file is copied when it is read (the
relay may rewrite it later) and scanned block by block, never whole."""

from __future__ import annotations

import base64
import gzip
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from semafore.deploy.dumps import Item, Spool, StoredFile, contains, find
from semafore.oracle import Oracle, engine, sources


def test_a_spool_gives_back_every_item_in_order_from_disk(tmp_path: Path) -> None:
    rng = random.Random(1)
    db = tmp_path / "relay.db"
    db.write_bytes(rng.randbytes(3000))
    items = [Item(f"redis:0:k{i}", rng.randbytes(rng.randint(0, 500))) for i in range(50)]
    spool = Spool(tmp_path)
    try:
        for item in items[:25]:
            spool.add(item)
        spool.add(StoredFile("file:relay.db", db))
        for item in items[25:]:
            spool.add(item)
        original = db.read_bytes()
        db.write_bytes(b"rewritten when the relay stopped")  # the copy was taken before
        back = list(spool)
        assert len(spool) == 51
        assert spool.bytes == sum(len(i.data) for i in items) + len(original)
        assert [i for i in back if isinstance(i, Item)] == items
        (stored,) = [i for i in back if isinstance(i, StoredFile)]
        assert back.index(stored) == 25
        assert stored.source == "file:relay.db" and stored.path.read_bytes() == original
        assert list(spool) == back  # read again, same items
    finally:
        spool.close()
    assert not stored.path.exists()


def test_a_needle_split_across_blocks_of_a_stored_file_is_found(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch,
                                                                  ) -> None:
    monkeypatch.setattr("semafore.deploy.dumps.READ_BYTES", 64)
    path = tmp_path / "dump.rdb"
    path.write_bytes(b"x" * 60 + b"NEEDLE-123" + b"y" * 100)
    stored = StoredFile("redis-file:dump.rdb", path)
    assert contains(stored, b"NEEDLE-123")
    assert not contains(stored, b"NEEDLE-124")
    assert find([Item("a", b"no"), stored, Item("b", b"NEEDLE-123")], b"NEEDLE-123") == [
        "redis-file:dump.rdb", "b"]


def test_a_dump_is_scanned_item_by_item_and_its_files_block_by_block(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A key in a record is located at the record; a key deep in a gzipped stored file is
    found through the stream (whole-file gzip undone as read), and no block larger than
    the read size is ever asked of the file."""
    rng = random.Random(2)
    in_record, in_file = rng.randbytes(32), rng.randbytes(32)
    o = Oracle()
    o.register_key("in record", in_record)
    o.register_key("in file", in_file)
    lines = [b"entry %d %s" % (n, rng.randbytes(8).hex().encode()) for n in range(45000)]
    lines.append(b"token=" + base64.b64encode(in_file))
    archive = tmp_path / "appendonly.aof.gz"
    archive.write_bytes(gzip.compress(b"\n".join(lines)))
    read_sizes: list[int] = []
    real = sources._decompressed

    def counted(fh: gzip.GzipFile, size: int) -> Iterator[bytes]:
        for block in real(fh, size):
            read_sizes.append(len(block))
            yield block

    monkeypatch.setattr(sources, "_decompressed", counted)
    spool = Spool(tmp_path)
    try:
        spool.add(Item("redis:0:queue", b"env:" + in_record.hex().encode()))
        spool.add(StoredFile(f"redis-file:{archive}", archive))
        scanner = o.scanner()
        scanner.add_dump("redis", spool)
        report = scanner.finish()
    finally:
        spool.close()
    found = {(h.label, h.location.split(":line")[0], h.encoding) for h in report.hits}
    assert found == {("in record", "redis:0:queue", "hex"),
                     ("in file", f"redis-file:{archive}", "gzip → base64")}
    assert len(read_sizes) > 1 and max(read_sizes) <= sources.READ_BYTES
    assert report.bytes_by_tier["redis"] > engine.BLOCK_BYTES
