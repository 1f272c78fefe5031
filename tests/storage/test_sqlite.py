"""SQLite-specific guarantees beyond the conformance suite: durability and multi-connection
atomicity (two relay processes sharing one file never hand out the same OPK)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from semafore.storage import open_stores
from semafore.storage.ports import OneTimePrekeyRecord, Org
from semafore.storage.sqlite import sqlite_stores


def test_state_survives_reopen(tmp_path: Path) -> None:
    path = str(tmp_path / "db.sqlite3")

    async def write() -> None:
        stores = sqlite_stores(path)
        await stores.accounts.create_org(Org("o1", "One", 1.0))
        await stores.close()

    async def read() -> Org | None:
        stores = open_stores(f"sqlite:{path}")
        try:
            return await stores.accounts.get_org("o1")
        finally:
            await stores.close()

    asyncio.run(write())
    assert asyncio.run(read()) == Org("o1", "One", 1.0)


def test_two_connections_never_claim_the_same_opk(tmp_path: Path) -> None:
    path = str(tmp_path / "db.sqlite3")
    setup = sqlite_stores(path)
    batch = [OneTimePrekeyRecord(f"opk-{i}", i.to_bytes(32, "big")) for i in range(200)]
    asyncio.run(setup.keys.add_opks("bob", "d1", batch))
    claimed: list[list[str]] = [[], []]

    def worker(slot: int) -> None:
        stores = sqlite_stores(path)  # its own connection, like a second relay process

        async def run() -> None:
            while (opk := await stores.keys.claim_opk("bob", "d1")) is not None:
                claimed[slot].append(opk.key_id)

        asyncio.run(run())
        asyncio.run(stores.close())

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = claimed[0] + claimed[1]
    assert sorted(everything) == sorted(o.key_id for o in batch)
    assert len(set(everything)) == len(everything)
    asyncio.run(setup.close())


def test_unknown_store_spec_is_rejected() -> None:
    import pytest

    for spec in ("", "sqlite:", "redis://x", "memory:"):
        with pytest.raises(ValueError, match="unknown store"):
            open_stores(spec)
