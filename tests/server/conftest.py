"""Fixtures: a relay on the in-memory store (and SQLite where the store matters)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from semafore.storage.memory import memory_stores
from semafore.storage.ports import Stores
from semafore.storage.sqlite import sqlite_stores
from tests.server.helpers import LogCapture, World, make_world


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Skip even collecting the slow fuzzing tier when the run deselects ``slow``."""
    if collection_path.name == "test_schemathesis_slow.py":
        markexpr = str(config.getoption("-m") or "")
        if "not slow" in markexpr:
            return True
    return None


@pytest.fixture
def logs() -> LogCapture:
    return LogCapture()


@pytest.fixture(params=["memory", "sqlite"])
def any_stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stores]:
    import asyncio

    stores = memory_stores() if request.param == "memory" else sqlite_stores(str(tmp_path / "r.db"))
    yield stores
    asyncio.run(stores.close())


@pytest.fixture
def world(logs: LogCapture) -> Iterator[World]:
    w, client = make_world(memory_stores())
    with client:
        yield w


@pytest.fixture
def test_mode_world(logs: LogCapture) -> Iterator[World]:
    w, client = make_world(memory_stores(), test_mode=True, test_orgs=frozenset({"qa"}))
    with client:
        yield w
