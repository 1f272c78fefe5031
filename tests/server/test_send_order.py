"""Overlapping a socket's sends keeps both orders (``semafore.server.send_order``, issue #16
item 4): envelopes are queued in the order the device sent them, and every reply leaves in the
order of the frames it answers, whatever finishes first.

The relay overlaps sends only on a store that claims ``QueueStore.pipelines_sends``; here that
is the in-memory store made to look like Redis (``RoundTripQueues``: it takes effect in its
first step, so calls apply in the order started, then answers after a round trip). The Redis
adapter's own claim is checked on real Redis by ``tests/storage/test_pipelined_sends.py``.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest

from semafore.server import send_order
from semafore.server.send_order import SendOrder
from semafore.storage.memory import MemoryAccountStore, memory_stores
from semafore.storage.ports import (
    Membership,
    SendRecord,
)
from tests.server.helpers import DeviceSession, World, b64, make_world, messaging_org
from tests.storage.test_pipelined_sends import RoundTripQueues

# -- the tickets ---------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_turn_waits_for_every_earlier_turn_and_passing_out_of_order_is_fine() -> None:
    order = SendOrder()
    first, second, third = order.turn(), order.turn(), order.turn()
    went: list[str] = []

    async def go(name: str, turn: send_order.Turn) -> None:
        await turn.wait()
        went.append(name)
        turn.passed()

    waiting = asyncio.ensure_future(go("third", third))
    await asyncio.sleep(0)
    second.passed()  # refused by a check before its store call: it never waits
    await asyncio.sleep(0)
    assert went == []  # the first has not started its store call yet
    await first.wait()  # the first's turn is at once: nothing before it
    went.append("first")
    first.passed()
    await waiting
    assert went == ["first", "third"]
    assert order.unpassed == 0
    first.passed()  # twice is harmless (the socket passes every turn when a send ends)
    assert order.unpassed == 0


@pytest.mark.anyio
async def test_a_cancelled_wait_leaves_the_order_usable() -> None:
    order = SendOrder()
    first, second, third = order.turn(), order.turn(), order.turn()
    stuck = asyncio.ensure_future(second.wait())
    await asyncio.sleep(0)
    stuck.cancel()
    second.passed()  # what the socket does for a send that ended
    first.passed()
    await asyncio.wait_for(third.wait(), 1)
    assert order.unpassed == 1


# -- a socket's sends on a store with a round trip ---------------------------------------------

BODY = b"DRV1" + bytes(range(68))  # what the relay's envelope check takes for a DR_V1 frame


class SlowFirstMembership(MemoryAccountStore):
    """Membership reads answer at once, except the first one after :meth:`arm`, which takes
    ``delay`` seconds: a send whose account-cache miss is slow, so a later send of the same
    socket reaches its store call first unless it waits for its turn."""

    def __init__(self) -> None:
        super().__init__()
        self.delay: float | None = None

    def arm(self, delay: float) -> None:
        self.delay = delay

    async def get_membership(self, org_id: str, user_id: str) -> Membership | None:
        delay, self.delay = self.delay, None
        if delay is not None:
            await asyncio.sleep(delay)
        return await super().get_membership(org_id, user_id)


@pytest.fixture
def overlapping() -> Iterator[tuple[World, dict[str, DeviceSession]]]:
    stores = dataclasses.replace(
        memory_stores(), queues=RoundTripQueues(after=0.05), accounts=SlowFirstMembership()
    )
    world, client = make_world(stores)
    with client:
        yield world, messaging_org(world)


def send_frame(request_id: str, message_id: str, org: dict[str, DeviceSession]) -> dict[str, Any]:
    b1, b2 = org["b1"], org["b2"]
    return {
        "type": "send", "request_id": request_id, "user_id": "bob",
        "message": {"message_id": message_id, "envelopes": [
            {"device_id": s.device_id, "registration_id": s.registration_id,
             "body": b64(BODY)} for s in (b1, b2)
        ]},
    }


def queued(world: World, device: DeviceSession) -> list[str]:
    r = world.client.get("/v1/messages", headers=device.headers)
    assert r.status_code == 200, r.text
    return [e["message_id"] for e in r.json()["envelopes"]]


def burst_after_a_slow_first_check(
    world: World, org: dict[str, DeviceSession], count: int = 6
) -> list[dict[str, Any]]:
    """Alice's socket sends ``count`` messages to bob back to back; the first one's check
    reads bob's membership slowly (a cold account cache). The replies, as they came."""
    accounts = world.stores.accounts
    assert isinstance(accounts, SlowFirstMembership)
    world.relay.user_changed("bob")  # a cold cache for bob: the first send reads the store
    accounts.arm(0.3)
    with world.client.websocket_connect("/v1/websocket", headers=org["a1"].headers) as ws:
        for n in range(count):
            ws.send_json(send_frame(f"r{n}", f"m{n}", org))
        return [ws.receive_json() for _ in range(count)]


def test_a_socket_s_sends_overlap_and_are_queued_in_the_order_sent(
    overlapping: tuple[World, dict[str, DeviceSession]],
) -> None:
    world, org = overlapping
    queues = world.stores.queues
    assert isinstance(queues, RoundTripQueues)
    replies = burst_after_a_slow_first_check(world, org)
    assert [(r["request_id"], r["status"]) for r in replies] == [(f"r{n}", 200) for n in range(6)]
    assert queues.started == [f"m{n}" for n in range(6)]
    assert queued(world, org["b1"]) == queued(world, org["b2"]) == [f"m{n}" for n in range(6)]


def test_without_its_turn_a_later_send_would_be_queued_first(
    overlapping: tuple[World, dict[str, DeviceSession]], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The check above can fail: with the turn's wait removed, the sends after the slow one
    reach the store first and bob's queue is out of order."""

    async def no_wait(self: send_order.Turn) -> None:
        return None

    monkeypatch.setattr(send_order.Turn, "wait", no_wait)
    world, org = overlapping
    burst_after_a_slow_first_check(world, org)
    assert queued(world, org["b1"])[-1] == "m0"


def test_the_sends_really_overlap(overlapping: tuple[World, dict[str, DeviceSession]]) -> None:
    """Six sends whose store calls each answer after 0.2 s: started back to back, all six
    are in the store before the first one answered (one at a time, the sixth would start a
    second after the first)."""
    world, org = overlapping
    queues = world.stores.queues
    assert isinstance(queues, RoundTripQueues)
    queues.after = 0.2
    seen: list[int] = []
    original = queues.enqueue_send_limited

    async def counting(*args: Any) -> SendRecord | None:
        call = original(*args)
        result = await call
        seen.append(len(queues.started))  # how many had started when this one answered
        return result

    queues.enqueue_send_limited = counting  # type: ignore[method-assign,assignment]
    with world.client.websocket_connect("/v1/websocket", headers=org["a1"].headers) as ws:
        for n in range(6):
            ws.send_json(send_frame(f"r{n}", f"m{n}", org))
        replies = [ws.receive_json() for _ in range(6)]
    assert [r["status"] for r in replies] == [200] * 6
    assert seen[0] == 6


def test_replies_keep_frame_order_whatever_finishes_first(
    overlapping: tuple[World, dict[str, DeviceSession]],
) -> None:
    """A send still waiting on its store, then an unreadable frame and a send refused at
    once (an unknown user): their answers wait behind the first send's response."""
    world, org = overlapping
    queues = world.stores.queues
    assert isinstance(queues, RoundTripQueues)
    queues.after = 0.2
    with world.client.websocket_connect("/v1/websocket", headers=org["a1"].headers) as ws:
        ws.send_json(send_frame("slow", "m-slow", org))
        ws.send_text("not json")
        ws.send_json({**send_frame("nobody", "m-x", org), "user_id": "nobody"})
        ws.send_json({"type": "ack", "delivery_ids": ["00" * 16]})  # none of hers
        ws.send_json(send_frame("last", "m-last", org))
        replies = [ws.receive_json() for _ in range(5)]
    assert [(r["type"], r.get("request_id"), r.get("status")) for r in replies] == [
        ("response", "slow", 200),
        ("error", None, None),
        ("response", "nobody", 404),
        ("acked", None, None),
        ("response", "last", 200),
    ]
    assert queued(world, org["b1"]) == ["m-slow", "m-last"]


def test_a_store_that_does_not_claim_it_gets_one_send_at_a_time() -> None:
    """The in-memory store answers in its first step: nothing to overlap, no task per send."""
    stores = memory_stores()
    assert stores.queues.pipelines_sends is False
    world, client = make_world(stores)
    with client:
        org = messaging_org(world)
        with world.client.websocket_connect("/v1/websocket", headers=org["a1"].headers) as ws:
            for n in range(3):
                ws.send_json(send_frame(f"r{n}", f"m{n}", org))
            assert [ws.receive_json()["request_id"] for _ in range(3)] == ["r0", "r1", "r2"]
        assert queued(world, org["b1"]) == ["m0", "m1", "m2"]


def test_a_send_that_fails_unexpectedly_ends_the_socket_as_before(
    overlapping: tuple[World, dict[str, DeviceSession]],
) -> None:
    """An error that is not a refusal (a broken store) is not swallowed by the send's task:
    it ends the socket, as it did when the reader awaited each send itself."""
    world, org = overlapping
    queues = world.stores.queues
    assert isinstance(queues, RoundTripQueues)

    async def broken(*args: Any) -> SendRecord | None:
        raise RuntimeError("the store broke")

    queues.enqueue_send_limited = broken  # type: ignore[method-assign,assignment]
    with (
        pytest.raises(RuntimeError, match="the store broke"),
        world.client.websocket_connect("/v1/websocket", headers=org["a1"].headers) as ws,
    ):
        ws.send_json(send_frame("r0", "m0", org))
        ws.receive_json()
