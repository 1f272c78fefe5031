"""Conformance factories of the embedded adapters (memory, SQLite file)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from semafore.storage.memory import memory_stores
from semafore.storage.ports import Stores
from semafore.storage.sqlite import sqlite_stores


@asynccontextmanager
async def memory(tmp_path: Path) -> AsyncIterator[Stores]:
    stores = memory_stores()
    try:
        yield stores
    finally:
        await stores.close()


@asynccontextmanager
async def sqlite(tmp_path: Path) -> AsyncIterator[Stores]:
    stores = sqlite_stores(str(tmp_path / "relay.sqlite3"))
    try:
        yield stores
    finally:
        await stores.close()


@asynccontextmanager
async def sqlite_shared_limits(tmp_path: Path) -> AsyncIterator[Stores]:
    stores = sqlite_stores(str(tmp_path / "relay.sqlite3"), shared_rate_limits=True)
    try:
        yield stores
    finally:
        await stores.close()


FACTORIES = {"memory": memory, "sqlite": sqlite, "sqlite-shared-limits": sqlite_shared_limits}
