"""Issue 13 F-5, through a real loopback socket: sockets per device are capped (a newer one
closes the oldest with 4409), each socket has a bounded window of pushed, unacknowledged
envelopes (the rest wait in the store), and a device that does not consume (never reads, or
never acks a full window) is closed with 4408 while its envelopes stay queued."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from benchmarks.bench_sockets import close_code, open_raw_websocket, read_frames
from semafore.server.push import REFILL, PushOutbox
from semafore.server.settings import unlimited_rate_limits
from semafore.storage.ports import QueuedEnvelope
from tests.server.socket_world import Session, SocketWorld, socket_world

BODY = b"DRV1" + bytes(996)  # 1000 bytes


@pytest.fixture
def world() -> Iterator[SocketWorld]:
    with socket_world(
        max_sockets_per_device=2, ws_window_bytes=3 * len(BODY), ws_stall_timeout=0.5,
        session_recheck=0.25,
    ) as w:
        w.signup("acme", "alice")
        yield w


def members(world: SocketWorld) -> tuple[Session, Session, int]:
    alice = world.login("acme", "alice", "a1", admin=True)
    assert world.put_member(alice, "bob").status_code == 200
    r = world.login_request("acme", "bob", "b1", world.otp("acme", "bob"))
    t = r.json()
    bob = Session("acme", "bob", "b1", t["access_token"], t["role"])
    world.publish_keys(bob)  # a recipient device has keys (docs/server.md)
    return alice, bob, int(t["registration_id"])


def queue(world: SocketWorld, alice: Session, rid: int, count: int, body: bytes = BODY) -> None:
    for n in range(count):
        r = world.http().put("/v1/messages/bob", headers=alice.headers, json={
            "message_id": f"m{n}", "envelopes": [
                {"device_id": "b1", "registration_id": rid,
                 "body": base64.b64encode(body).decode()}]})
        assert r.status_code == 200, r.text


def socket_of(world: SocketWorld, who: Session) -> ClientConnection:
    return connect(world.server.ws_url, additional_headers=who.headers, open_timeout=5)


def until_reply(ws: ClientConnection) -> tuple[list[str], dict[str, Any]]:
    """Envelope delivery ids received before the next non-envelope frame, and that frame."""
    ids: list[str] = []
    while True:
        frame = json.loads(ws.recv(timeout=5))
        if frame["type"] != "envelope":
            return ids, frame
        ids.append(frame["delivery_id"])


def closed_with(ws: ClientConnection) -> int | None:
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            ws.recv(timeout=10)
    return closed.value.rcvd.code if closed.value.rcvd else None


def test_a_newer_socket_of_a_device_replaces_its_oldest_beyond_the_cap(
    world: SocketWorld,
) -> None:
    alice, bob, rid = members(world)
    first, second = socket_of(world, bob), socket_of(world, bob)
    with first, second, socket_of(world, bob) as third:
        assert closed_with(first) == 4409
        assert len(world.relay.hub.device_connections("bob", "b1")) == 2
        queue(world, alice, rid, 1)
        for ws in (second, third):  # the two newest still get pushes
            assert json.loads(ws.recv(timeout=5))["message_id"] == "m0"


def test_a_socket_gets_no_more_than_its_window_until_it_acks(world: SocketWorld) -> None:
    alice, bob, rid = members(world)
    queue(world, alice, rid, 8)
    delivered: list[str] = []
    with socket_of(world, bob) as ws:
        for expected in (3, 3, 2):
            # the unknown-id ack is answered after everything the window let through
            ws.send(json.dumps({"type": "ack", "delivery_ids": ["probe"]}))
            ids, reply = until_reply(ws)
            assert reply == {"type": "acked", "delivery_ids": []}
            assert len(ids) == expected
            delivered += ids
            ws.send(json.dumps({"type": "ack", "delivery_ids": ids}))
            early, reply = until_reply(ws)  # the refill is queued behind the acked reply
            assert early == [] and sorted(reply["delivery_ids"]) == sorted(ids)
    assert len(set(delivered)) == 8


def test_a_device_that_never_acks_a_full_window_is_closed_as_a_slow_consumer(
    world: SocketWorld,
) -> None:
    alice, bob, rid = members(world)
    queue(world, alice, rid, 5)
    with socket_of(world, bob) as ws:
        assert closed_with(ws) == 4408  # it read 3 envelopes and acked none
    r = world.http().get("/v1/messages", headers=bob.headers)
    assert len(r.json()["envelopes"]) == 5  # nothing lost: all still queued


def test_a_device_that_does_not_read_is_closed_as_a_slow_consumer() -> None:
    """A big window, a backlog larger than the socket buffers, a peer that reads nothing:
    the relay's writes stall, and the close frame (4408) is queued behind them."""
    body = b"DRV1" + bytes(60 * 1024)
    backlog = 200  # 12 MiB: more than loopback's socket buffers (tcp_wmem max 4 MiB) take
    with socket_world(ws_window_bytes=64 * 1024 * 1024, ws_stall_timeout=0.5,
                      session_recheck=0.25, rate_limits=unlimited_rate_limits()) as world:
        world.signup("acme", "alice")
        alice, bob, rid = members(world)
        queue(world, alice, rid, backlog, body)
        sock = open_raw_websocket(world.server.port, bob.access_token)
        with sock:
            assert _until(lambda: world.relay.hub.connected("bob", "b1"))
            assert _until(lambda: not world.relay.hub.connected("bob", "b1"))  # let go
            frames = list(read_frames(sock))
    envelopes = [f for op, f in frames if op == 1]
    assert 0 < len(envelopes) < backlog  # it had started sending; the rest stayed queued
    assert [close_code(p) for op, p in frames if op == 8] == [4408]


def _until(condition: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return condition()


def test_the_hub_buffers_a_bounded_number_of_envelopes_then_asks_for_a_refill() -> None:
    outbox = PushOutbox(limit=2)
    envelopes = [QueuedEnvelope(f"d{i}", "acme", "m", "message", "alice", "a1", "bob", "b1",
                                BODY, bytes(32), 0.0) for i in range(5)]
    for env in envelopes:
        outbox.put_nowait(env)
    outbox.put_nowait({"type": "acked", "delivery_ids": []})  # replies always go in
    drained = [outbox.get_nowait() for _ in range(outbox.qsize())]
    assert drained == [envelopes[0], envelopes[1], REFILL,
                       {"type": "acked", "delivery_ids": []}]
    outbox.put_nowait(envelopes[2])  # room again once taken
    assert outbox.get_nowait() is envelopes[2]
