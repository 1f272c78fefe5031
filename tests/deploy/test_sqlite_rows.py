"""An SQLite store file read as its holder reads it (semafore.deploy.dumps.iter_sqlite_rows):
every row of every table, the WAL applied, the live file never opened — so the metadata
inventory gets record boundaries a raw page does not show (a page stores a record's fields
back to back), and a granted store file that is not a readable database is an error naming
it, never a crash or a silent skip (issue 15 item 0: the external relay's database view)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from semafore.deploy.dumps import SQLITE_MAGIC, is_sqlite, iter_sqlite_rows
from semafore.gate.live import RelayAccess, _store_source


def _database(path: Path) -> sqlite3.Connection:
    """A WAL-mode database whose last rows are still in the WAL (the connection stays open
    with checkpoints off, as a running relay's would)."""
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA wal_autocheckpoint=0")
    con.execute('CREATE TABLE "odd ""name""" (user_id TEXT, key BLOB)')
    con.execute("CREATE TABLE devices (user_id TEXT, device_id TEXT)")
    con.commit()
    con.execute("INSERT INTO devices VALUES ('org-7.alice', 'phone'), ('org-7.bob', 'laptop')")
    con.execute('INSERT INTO "odd ""name""" VALUES (?, ?)', ("org-7.alice", b"\x00\xffkey"))
    con.commit()
    return con


def test_every_row_of_every_table_is_one_item_with_the_wal_applied(tmp_path: Path) -> None:
    db = tmp_path / "relay.db"
    con = _database(db)
    try:
        assert (tmp_path / "relay.db-wal").stat().st_size > 0  # the rows are in the WAL
        items = list(iter_sqlite_rows(db))
    finally:
        con.close()
    rows = {item.source: json.loads(item.data) for item in items}
    assert rows == {
        f"{db}#devices/0": {"user_id": "org-7.alice", "device_id": "phone"},
        f"{db}#devices/1": {"user_id": "org-7.bob", "device_id": "laptop"},
        f'{db}#odd "name"/0': {"user_id": "org-7.alice", "key": "00ff6b6579"},
    }


def test_the_live_file_is_left_as_it_was(tmp_path: Path) -> None:
    db = tmp_path / "relay.db"
    con = _database(db)
    try:
        before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
        list(iter_sqlite_rows(db))
        assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    finally:
        con.close()


def test_a_database_is_known_by_its_header_not_its_name(tmp_path: Path) -> None:
    db, text, empty = tmp_path / "store.bin", tmp_path / "relay.db", tmp_path / "x.db"
    sqlite3.connect(db).execute("CREATE TABLE t (a)").connection.commit()
    text.write_text("not a database")
    empty.write_bytes(b"")
    assert [is_sqlite(p) for p in (db, text, empty, tmp_path / "absent")] == [
        True, False, False, False]


def test_a_file_with_the_header_but_no_database_behind_it_raises(tmp_path: Path) -> None:
    bad = tmp_path / "bad.db"
    bad.write_bytes(SQLITE_MAGIC + b"\x00" * 200)
    with pytest.raises(sqlite3.DatabaseError):
        list(iter_sqlite_rows(bad))


def test_the_gate_reads_a_granted_database_as_rows_and_names_one_it_cannot_read(
        tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    con = _database(store / "relay.db")
    (store / "broken.db").write_bytes(SQLITE_MAGIC + b"\x00" * 200)
    try:
        scan = _store_source(RelayAccess(files=(store,)), "org-7")
    finally:
        con.close()
    (part,) = scan.parts.values()
    assert "2 SQLite database(s) also read as 3 rows" in part
    assert [e for e in scan.errors if "broken.db: its rows could not be read" in e]
    sources = [item.source for _, spool in scan.spools for item in spool]
    assert f"{store / 'relay.db'}#devices/1" in sources
