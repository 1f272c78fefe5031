"""One HTTP connection pool shared by many devices of a process
(``semafore.client.transport.SharedConnectionPool``, docs/client.md): every borrowing
device's requests go through it, closing one device leaves it open for the others, and
closing the pool itself ends it."""

from __future__ import annotations

import asyncio

import pytest

from semafore.client.errors import TransportError
from semafore.client.transport import RelayHttp, SharedConnectionPool
from semafore.protocol.entropy import SeededEntropy
from tests.client.helpers import world


def test_devices_borrow_one_pool_and_closing_a_device_leaves_it_open() -> None:
    async def body() -> tuple[int, list[str]]:
        async with world([]) as w:
            pool = SharedConnectionPool(max_connections=2)
            devices = [RelayHttp(w.server.url, SeededEntropy(f"d{i}"), transport=pool)
                       for i in range(5)]
            for http in devices:
                await http.json("GET", "/v1/health", auth=False)
            await devices[0].close()
            statuses = [str((await http.json("GET", "/v1/health", auth=False))["status"])
                        for http in devices[1:]]
            for http in devices[1:]:
                await http.close()
            await pool.close()
            late = RelayHttp(w.server.url, SeededEntropy("late"), transport=pool)
            try:
                with pytest.raises(TransportError):  # the pool itself is closed now
                    await late.call("GET", "/v1/health", auth=False, retry=False)
            finally:
                await late.close()
            return pool.requests, statuses

    requests, statuses = asyncio.run(body())
    assert requests == 5 + 4  # the refused one never reached a connection
    assert statuses == ["ok"] * 4


def test_a_pool_needs_a_connection() -> None:
    with pytest.raises(ValueError, match="max_connections"):
        SharedConnectionPool(max_connections=0)
