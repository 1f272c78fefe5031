"""A relay-side adversary's view is kept where its bytes are and read back as a stream
(simulator.relay_view; issue #12 item 3, docs/oracle.md "Streaming"): the log as an extent of
the run's log file, the wire as a range of the capture, dumps spooled to disk. These pin what
a view holds and that examining it finds what it must, view by view."""

from __future__ import annotations

import base64
import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from semafore.deploy.dumps import Spool, StoredFile
from semafore.oracle import Chunk, Oracle
from simulator import inventory as inv
from simulator.network import Captured
from simulator.relay_view import (
    FILE_CHUNK_BYTES,
    LogExtent,
    RelayView,
    Spooled,
    WireRange,
    examine,
    spooled,
)

KEY = bytes(range(7, 39))


def _oracle() -> Oracle:
    oracle = Oracle()
    oracle.register_key("the key", KEY)
    return oracle


@given(before=st.lists(st.text(alphabet="abc {}\":", max_size=30), max_size=8),
       after=st.lists(st.text(alphabet="xyz", min_size=1, max_size=30), min_size=1, max_size=4))
def test_a_log_view_holds_the_lines_written_before_it_and_no_later_one(
        before: list[str], after: list[str]) -> None:
    """The log only grows: the view at a step is the file's first ``end`` bytes, numbered as
    the whole log numbers them."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "relay.log"
        with path.open("w", encoding="utf-8") as log:
            for line in before:
                log.write(line + "\n")
            log.flush()
            extent = LogExtent(path, path.stat().st_size)
            for line in after:
                log.write(line + "\n")
        records = list(extent.records())
        assert [r.data for r in records] == [line.encode() for line in before]
        assert [r.location for r in records] == [f"relay.log:line {n}"
                                                 for n in range(1, len(before) + 1)]
        assert all(r.tier == "log" for r in records)


def test_a_wire_view_numbers_records_as_the_capture_and_keeps_those_since_its_time() -> None:
    captured = [Captured(10.0 + i, f"alice:phone{i}", "up", "ws", b"frame %d" % i)
                for i in range(5)]
    until_now = WireRange(captured, 3)
    captured.append(Captured(20.0, "bob:laptop", "down", "http", b"later"))
    assert [c.location for c in until_now.records()] == [
        "wire #0 alice:phone0 up ws t=10.000", "wire #1 alice:phone1 up ws t=11.000",
        "wire #2 alice:phone2 up ws t=12.000"]
    since = WireRange(captured, len(captured), since=13.0)
    assert [c.location.split()[1] for c in since.records()] == ["#3", "#4", "#5"]
    assert RelayView([since]).wire_times() == [13.0, 14.0, 20.0]


def test_each_view_reports_only_its_own_hits(tmp_path: Path) -> None:
    """Two views of the same store record, before and after the relay wrote the key into
    it: only the later view holds the leak. (One scanner for every view, filtered by record
    name, blamed the earlier view too: the name recurs with other bytes.)"""
    source = "redis:0:b'queue:bob'"
    before = RelayView(spooled([Chunk("redis", source, b"opaque ciphertext")], tmp_path))
    after = RelayView(spooled([Chunk("redis", source, b"leaked " + KEY.hex().encode())],
                              tmp_path))
    oracle = _oracle()
    try:
        assert examine(before, oracle, "early", "database", []).report.hits == []
        hits = examine(after, oracle, "late", "database", []).report.hits
        assert [(h.location, h.label) for h in hits] == [(source, "the key")]
    finally:
        before.close()
        after.close()


def test_a_stored_file_is_scanned_as_a_stream_and_read_in_pieces_by_the_inventory(
        tmp_path: Path) -> None:
    """An AOF larger than one piece: the key written across the piece boundary is found by
    the oracle (the file is one stream to it), and the inventory and tally see the pieces."""
    aof = tmp_path / "appendonly.aof"
    secret = base64.b64encode(KEY)
    cut = FILE_CHUNK_BYTES - len(secret) // 2
    aof.write_bytes(b"*" * cut + secret + b"*" * 1000)
    spool = Spool(tmp_path)
    spool.add(StoredFile(f"redis-file:{aof}", aof))
    view = RelayView([Spooled("redis", spool)])
    try:
        examined = examine(view, _oracle(), "root", "server", [])
        whole = [h for h in examined.report.hits if h.matched == h.length]
        assert [(h.label, h.location) for h in whole] == [
            ("the key", f"redis-file:{aof}:byte {cut}")]
        assert [(s.tier, s.items, s.bytes) for s in examined.sources] == [
            ("redis", 2, aof.stat().st_size)]
    finally:
        view.close()


def test_the_inventory_reads_every_part_of_the_view_in_order(tmp_path: Path) -> None:
    log = tmp_path / "relay.log"
    log.write_bytes(b'{"event":"login","user":"olivia.smith"}\n')
    store = spooled([Chunk("mongodb", "mongodb:relay.users/1", b"olivia.smith")], tmp_path)
    view = RelayView([*store, LogExtent(log, log.stat().st_size),
                      WireRange([Captured(5.0, "olivia.smith:phone", "up", "ws", b"x")], 1)])
    try:
        assert [c.tier for c in view.records()] == ["mongodb", "log", "wire"]
        examined = examine(view, _oracle(), "root", "server",
                           [inv.Identifier("user", "olivia.smith", "olivia.smith",
                                           "olivia.smith")])
        assert examined.inventory.raw == {"user": ["olivia.smith"]}
        assert examined.inventory.where["olivia.smith"] == ["log", "mongodb"]
        assert examined.inventory.timestamps == 1  # the wire record's capture time
    finally:
        view.close()


def test_closing_a_view_removes_its_spools(tmp_path: Path) -> None:
    view = RelayView(spooled([Chunk("redis", "a", b"1"), Chunk("mongodb", "b", b"2")],
                             tmp_path))
    assert list(tmp_path.iterdir())
    view.close()
    assert not list(tmp_path.iterdir())
    assert view.parts == []
