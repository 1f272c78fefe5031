"""A push-socket write is bounded (``DeviceClient(ws_send_timeout=)``, docs/client.md
"Transport"): against a relay that accepted the WebSocket and then stopped reading, the
socket's buffers fill and a write would wait forever; instead it raises ``TransportError``
naming the operation and the setting, and the socket is dropped."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from websockets.asyncio.server import ServerConnection, serve

from semafore.client import DeviceClient, ManualClock
from semafore.client.device import Device
from semafore.client.errors import TransportError
from semafore.client.transport import RelayHttp
from semafore.protocol.entropy import SeededEntropy

DEAD_HTTP = "http://127.0.0.1:9"  # never called: these tests only write on the push socket
NO_RELAY = "ws://127.0.0.1:9/v1/websocket"  # never connected
FRAME_IDS = 1500  # ~64 KiB of delivery ids per ack frame
MAX_FRAMES = 2048  # ~128 MiB: far more than loopback socket buffers hold (~3 MiB measured)
HANG_GUARD = 120.0  # a write that is not bounded fails the test here instead of hanging it


@asynccontextmanager
async def relay_that_stops_reading() -> AsyncIterator[str]:
    """A real WebSocket server on a loopback port: it completes the handshake, then never
    reads again (and keeps a small receive buffer), like a relay process that stalled."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    release = asyncio.Event()

    async def stalled(connection: ServerConnection) -> None:
        connection.transport.pause_reading()
        await release.wait()
        connection.transport.abort()  # no closing handshake: it would wait for a read

    async with serve(stalled, sock=listener, ping_interval=None):
        try:
            yield f"ws://127.0.0.1:{listener.getsockname()[1]}/v1/websocket"
        finally:
            release.set()


def _device_client(
    ws_url: str, *, ws_send_timeout: float | None = None, http: RelayHttp | None = None
) -> DeviceClient:
    entropy = SeededEntropy("ws-send-timeout")
    device = Device.create("alice", "a1", entropy, 0.0, opk_count=1)
    return DeviceClient(device, "acme", DEAD_HTTP, entropy, ManualClock(), ws_url=ws_url,
                        ws_send_timeout=ws_send_timeout, http=http)


def test_a_write_to_a_relay_that_stopped_reading_is_a_transport_error() -> None:
    async def body() -> TransportError:
        clients: list[DeviceClient] = []
        try:
            # the relay goes first on the way out: a write still blocked (no bound) ends then
            async with relay_that_stops_reading() as url:
                clients.append(client := _device_client(url, ws_send_timeout=0.2))
                client.connect()
                await client.wait_connected()
                ids = [f"{n:040d}" for n in range(FRAME_IDS)]
                for _ in range(MAX_FRAMES):  # each write fits until the buffers are full
                    try:
                        await client.send_frame({"type": "ack", "delivery_ids": ids},
                                                operation="ack")
                    except TransportError as exc:
                        return exc
                raise AssertionError(f"{MAX_FRAMES} frames written to a peer that never reads")
        finally:
            for client in clients:
                await client.disconnect()
                await client.http.close()

    error = asyncio.run(asyncio.wait_for(body(), HANG_GUARD))
    assert error.field == "ws_send_timeout"
    assert error.detail.startswith("websocket ack: frame not written within 0.2 s")


def test_without_a_socket_the_write_is_a_transport_error_naming_the_operation() -> None:
    async def body() -> None:
        client = _device_client(NO_RELAY)
        try:
            with pytest.raises(TransportError) as raised:
                await client.send_frame({"type": "watch_queue", "request_id": "q1"},
                                        operation="watch_queue")
            assert raised.value.field == "connection"
            assert raised.value.detail == "websocket watch_queue: not connected"
        finally:
            await client.http.close()

    asyncio.run(body())


def test_the_send_timeout_defaults_to_the_http_timeout_and_must_be_positive() -> None:
    entropy = SeededEntropy("ws-send-timeout")
    http = RelayHttp(DEAD_HTTP, entropy, timeout=3.5)
    assert _device_client(NO_RELAY, http=http).ws_send_timeout == 3.5
    for bad in (0.0, -1.0):
        with pytest.raises(ValueError, match="ws_send_timeout"):
            _device_client(NO_RELAY, ws_send_timeout=bad)

