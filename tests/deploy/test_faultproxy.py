"""FaultProxy on real sockets: a client talks to an echo backend through the proxy while the
test switches faults on and off."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from semafore.deploy.faultproxy import Direction, FaultProxy

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()
    except ConnectionError:
        pass


@pytest.fixture
async def proxy() -> AsyncIterator[FaultProxy]:
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with FaultProxy("127.0.0.1", port) as fp:
        yield fp
    server.close()
    await server.wait_closed()


async def connect(proxy: FaultProxy) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", proxy.port)


async def roundtrip(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, payload: bytes, timeout: float = 2.0
) -> bytes:
    writer.write(payload)
    await writer.drain()
    return await asyncio.wait_for(reader.readexactly(len(payload)), timeout)


async def test_forwards_bytes_both_ways_unchanged(proxy: FaultProxy) -> None:
    reader, writer = await connect(proxy)
    payload = bytes(range(256)) * 1000
    assert await roundtrip(reader, writer, payload) == payload
    assert proxy.stats.bytes_up == proxy.stats.bytes_down == len(payload)
    writer.close()


async def test_latency_delays_each_direction(proxy: FaultProxy) -> None:
    reader, writer = await connect(proxy)
    proxy.set_latency(0.2, Direction.UPSTREAM)
    proxy.set_latency(0.1, Direction.DOWNSTREAM)
    started = time.monotonic()
    assert await roundtrip(reader, writer, b"slow") == b"slow"
    assert time.monotonic() - started >= 0.3 - 0.02  # both legs paid (timer granularity)
    proxy.heal()
    assert await roundtrip(reader, writer, b"fast") == b"fast"
    writer.close()


async def test_drop_blackholes_bytes_but_keeps_the_connection(proxy: FaultProxy) -> None:
    reader, writer = await connect(proxy)
    proxy.drop(Direction.UPSTREAM)
    with pytest.raises(TimeoutError):
        await roundtrip(reader, writer, b"lost", timeout=0.3)
    assert proxy.stats.dropped_up == 4
    proxy.heal()
    assert await roundtrip(reader, writer, b"back") == b"back"  # same connection, later bytes
    assert proxy.active_connections == 1
    writer.close()


async def test_half_open_holds_bytes_and_releases_them_on_heal(proxy: FaultProxy) -> None:
    reader, writer = await connect(proxy)
    proxy.half_open(Direction.DOWNSTREAM)
    with pytest.raises(TimeoutError):
        await roundtrip(reader, writer, b"held", timeout=0.3)
    assert proxy.active_connections == 1  # nothing closed
    proxy.heal()
    assert await asyncio.wait_for(reader.readexactly(4), 2) == b"held"  # nothing lost
    writer.close()


async def test_cut_aborts_every_open_connection(proxy: FaultProxy) -> None:
    conns = [await connect(proxy) for _ in range(3)]
    for reader, writer in conns:
        assert await roundtrip(reader, writer, b"hi") == b"hi"
    assert proxy.cut() == 3
    for reader, _ in conns:
        with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
            await asyncio.wait_for(reader.readexactly(1), 2)
    reader, writer = await connect(proxy)  # new connections work after a cut
    assert await roundtrip(reader, writer, b"again") == b"again"
    writer.close()


async def test_refuse_closes_new_connections_until_healed(proxy: FaultProxy) -> None:
    proxy.refuse()
    reader, writer = await connect(proxy)
    with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
        await roundtrip(reader, writer, b"no")
    assert proxy.stats.refused == 1
    proxy.heal()
    reader, writer = await connect(proxy)
    assert await roundtrip(reader, writer, b"yes") == b"yes"
    writer.close()


async def test_backend_down_means_client_connection_closed() -> None:
    from semafore.deploy.processes import free_port

    async with FaultProxy("127.0.0.1", free_port()) as fp:
        reader, writer = await connect(fp)
        with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
            await roundtrip(reader, writer, b"x")


async def test_negative_latency_is_rejected(proxy: FaultProxy) -> None:
    with pytest.raises(ValueError, match="latency"):
        proxy.set_latency(-1)
