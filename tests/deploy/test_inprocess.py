"""The in-process launchers (issue 14 item 1): one way to bind, one uvicorn configuration, a
``with``/``async with`` shape that leaves nothing running.

What each check guards: a launcher that binds beyond loopback (the harness never listens
outside 127.0.0.0/8), a launcher that keeps serving after its block, and a launcher whose
WebSocket limit is not the relay's (``Settings.max_json_bytes``, the bound of the same
request over HTTP; docs/server.md "WebSocket")."""

from __future__ import annotations

import socket

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from semafore.deploy.errors import SettingsError
from semafore.deploy.inprocess import serve_in_task, serve_in_thread
from semafore.deploy.inprocess_replicas import InProcessReplica, ReplicaError, ReplicaState
from semafore.deploy.listener import bind_loopback
from semafore.server.settings import Settings
from semafore.storage.memory import memory_stores
from tests.server.socket_world import socket_world


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.1", "::1", "localhost", "example"])
def test_the_harness_binds_loopback_only(host: str) -> None:
    with pytest.raises(SettingsError) as refused:
        bind_loopback(0, host)
    assert refused.value.field == "host"


def test_a_loopback_alias_is_a_loopback_address() -> None:
    sock = bind_loopback(0, "127.0.0.2")
    try:
        assert sock.getsockname()[0] == "127.0.0.2"
        assert sock.proto == socket.IPPROTO_TCP  # asyncio sets TCP_NODELAY only then
    finally:
        sock.close()


def _refused(url: str) -> bool:
    try:
        httpx.get(url + "/v1/health", timeout=2.0)
    except httpx.ConnectError:
        return True
    return False


def test_a_thread_relay_serves_inside_its_block_and_not_after() -> None:
    with serve_in_thread(Settings(retention_interval=0), memory_stores(),
                         host="127.0.0.2") as running:
        assert running.host == "127.0.0.2"
        assert httpx.get(running.url + "/v1/health", timeout=5.0).status_code == 200
    assert _refused(running.url)


@pytest.mark.anyio
async def test_a_task_relay_serves_inside_its_block_and_not_after() -> None:
    async with (serve_in_task(Settings(retention_interval=0), memory_stores()) as running,
                httpx.AsyncClient() as http):
        assert (await http.get(running.url + "/v1/health")).status_code == 200
    assert _refused(running.url)


def test_a_websocket_frame_beyond_the_json_bound_is_refused_and_one_within_is_read() -> None:
    limit = 64 * 1024
    with socket_world(max_json_bytes=limit, test_mode=True,
                      test_orgs=frozenset({"acme"})) as world:
        world.signup("acme", "alice")
        alice = world.login("acme", "alice", "a1", admin=True)
        with connect(world.server.ws_url, additional_headers=alice.headers,
                     open_timeout=5, max_size=None) as ws:
            ws.send('{"type": "ack", "delivery_ids": [], "pad": "' + "x" * (limit // 2) + '"}')
            ws.recv(timeout=5)  # answered: a frame within the bound is read
            ws.send("x" * (limit + 1))
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


@pytest.mark.anyio
async def test_an_in_process_replica_runs_inside_its_block_and_is_stopped_after() -> None:
    replica = InProcessReplica(0, Settings(retention_interval=0), memory_stores())
    async with replica as running:
        assert running.state is ReplicaState.RUNNING
        async with httpx.AsyncClient() as http:
            assert (await http.get(running.url + "/v1/health")).status_code == 200
    assert replica.state is ReplicaState.STOPPED
    assert _refused(replica.url)


@pytest.mark.anyio
async def test_entering_a_running_replica_again_is_refused_naming_it() -> None:
    async with InProcessReplica(3, Settings(retention_interval=0), memory_stores()) as running:
        with pytest.raises(ReplicaError, match="replica-3 is running"):
            await running.__aenter__()
