"""Batched push (docs/server.md "WebSocket"): the SDK asks the relay for ``?batch=64`` and
reads ``envelopes`` frames and ``batch`` reply frames exactly as it reads single ones."""

from __future__ import annotations

import asyncio

import pytest

from semafore.client import Account, DeviceClient
from semafore.client.account import fixed_otp
from semafore.client.client import DEFAULT_PUSH_BATCH
from tests.client.helpers import World, world


async def until(predicate: object, timeout: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():  # type: ignore[operator]
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


async def receiver(w: World, push_batch: int) -> DeviceClient:
    account = w.accounts["bob"] = Account(
        "acme", "bob", w.server.url, w.entropy.fork, w.clock, fixed_otp(),
        client_options={"push_batch": push_batch},
    )
    return await account.add_device("phone", connect=False)


async def backlog_delivery(push_batch: int) -> tuple[list[bytes], int]:
    """Thirty messages wait in bob's queue; bob connects and the backlog is pushed."""
    async with world(["alice", "bob"]) as w:
        alice = await w.device("alice", "phone", connect=False)
        bob = await receiver(w, push_batch)
        for i in range(30):
            await alice.send_text("bob", f"m{i:02d}".encode())
        bob.connect()
        await until(lambda: len(bob.inbox) == 30)
        await until(lambda: not bob._acks)
        for _ in range(500):  # acked envelopes leave the queue
            if await w.server.relay.stores.queues.count("bob", "phone") == 0:
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("acked envelopes were not deleted")
        return [r.content.body for r in bob.inbox], bob.counters.push_frames


def test_the_sdk_asks_for_batched_push_by_default() -> None:
    assert DEFAULT_PUSH_BATCH == 64


@pytest.mark.parametrize("push_batch", [0, 1, 64])
def test_a_backlog_arrives_complete_in_order_and_acked_whatever_the_batch(push_batch: int) -> None:
    bodies, frames = asyncio.run(backlog_delivery(push_batch))
    assert bodies == [f"m{i:02d}".encode() for i in range(30)]
    if push_batch == 0:
        assert frames == 30  # one "envelope" frame each
    elif push_batch == 1:
        assert frames == 30  # "envelopes" frames of one
    else:
        assert frames < 30  # the backlog shares frames


def test_concurrent_websocket_sends_get_their_replies_from_batch_frames() -> None:
    async def body() -> tuple[int, int]:
        async with world(["alice", "bob"]) as w:
            alice = await w.device("alice", "phone", connect=True)
            bob = await w.device("bob", "phone", connect=True)
            await alice.wait_connected()
            await bob.wait_connected()
            await alice.send_text("bob", b"hello")  # bootstrap, so the rest are DR_V1
            await until(lambda: len(bob.inbox) == 1)
            await bob.send_text("alice", b"hi")
            await until(lambda: len(alice.inbox) == 1)
            await asyncio.gather(*(alice.send_text("bob", f"c{i}".encode()) for i in range(40)))
            await until(lambda: len(bob.inbox) == 41)
            return alice.counters.sent_messages, len({r.content.body for r in bob.inbox})

    sent, distinct = asyncio.run(body())
    assert sent == 41  # hello + 40 concurrent
    assert distinct == 41


def test_push_batch_is_bounded() -> None:
    async def body() -> None:
        async with world(["alice"]) as w:
            account = Account(
                "acme", "alice", w.server.url, w.entropy.fork, w.clock, fixed_otp(),
                client_options={"push_batch": 65},
            )
            with pytest.raises(ValueError, match="push_batch"):
                await account.add_device("phone", connect=False)

    asyncio.run(body())
