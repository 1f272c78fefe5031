"""Delayed acks (``DeviceClient(ack_delay=...)``, docs/client.md): envelopes that trickle in
one at a time are acked together, up to ``ack_delay`` seconds later, instead of one ack frame
(and one ``acked`` reply) each; the default acks each as soon as the push queue runs dry.
Either way every envelope ends acked and deleted at the relay."""

from __future__ import annotations

import asyncio
from unittest import mock

import pytest

from semafore.client import Account, DeviceClient
from semafore.client.account import fixed_otp
from semafore.client.client import MAX_ACK_DELAY
from tests.client.helpers import World, world

TRICKLE = 10


async def until(predicate: object, timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():  # type: ignore[operator]
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


async def receiver(w: World, ack_delay: float) -> DeviceClient:
    account = w.accounts["bob"] = Account(
        "acme", "bob", w.server.url, w.entropy.fork, w.clock, fixed_otp(),
        client_options={"ack_delay": ack_delay},
    )
    return await account.add_device("phone", connect=True)


async def trickle(ack_delay: float) -> tuple[int, int]:
    """Alice sends TRICKLE messages, each only once bob has the one before (so each arrives
    alone); returns (ack frames bob sent, envelopes left in bob's relay queue at the end)."""
    async with world(["alice", "bob"]) as w:
        alice = await w.device("alice", "phone", connect=False)
        bob = await receiver(w, ack_delay)
        await bob.wait_connected()
        with mock.patch.object(bob, "flush_acks", wraps=bob.flush_acks) as flushes:
            for i in range(TRICKLE):
                await alice.send_text("bob", f"t{i}".encode())
                await until(lambda i=i: len(bob.inbox) == i + 1)
            await until(lambda: not bob._acks)  # the last delayed ack went out
            frames = flushes.call_count
        for _ in range(500):  # acked envelopes leave the queue
            left = await w.server.relay.stores.queues.count("bob", "phone")
            if left == 0:
                break
            await asyncio.sleep(0.02)
        return frames, left


def test_by_default_each_envelope_that_arrives_alone_is_acked_at_once() -> None:
    frames, left = asyncio.run(trickle(0.0))
    assert frames == TRICKLE
    assert left == 0


def test_a_delay_acks_what_trickled_in_with_fewer_frames_and_loses_no_ack() -> None:
    frames, left = asyncio.run(trickle(2.0))
    assert 1 <= frames < TRICKLE
    assert left == 0


@pytest.mark.parametrize("delay", [-0.1, MAX_ACK_DELAY + 0.1])
def test_the_delay_is_bounded_below_the_relays_stall_timeout(delay: float) -> None:
    async def body() -> None:
        async with world(["bob"]) as w:
            with pytest.raises(ValueError, match="ack_delay"):
                await receiver(w, delay)

    asyncio.run(body())
