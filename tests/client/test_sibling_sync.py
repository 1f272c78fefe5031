"""Sync copies reach an own device added after the sender last looked (seed §4.2): the
client must not trust a cached "I have no other devices" forever, since with no sibling
envelope to send there is no request the relay could answer with 409 ``missing``."""

from __future__ import annotations

import asyncio

from semafore.client import DeviceClient
from tests.client.helpers import world


def texts(client: DeviceClient) -> list[bytes]:
    return [r.content.body for r in client.inbox]


def test_a_new_sibling_device_receives_the_sync_copy_of_the_next_message() -> None:
    async def body() -> None:
        async with world(["alice", "bob"]) as w:
            phone = await w.device("alice", "phone")
            bob = await w.device("bob", "phone")
            await phone.send_text("bob", b"before")  # alice has one device: no sync copy
            laptop = await w.device("alice", "laptop")
            result = await phone.send_text("bob", b"after")
            assert sorted(result.envelopes) == ["alice:laptop", "bob:phone"]
            assert result.sync == frozenset({"alice:laptop"})
            await laptop.poll()
            assert texts(laptop) == [b"after"]
            assert laptop.inbox[0].content.sync_to == "bob"
            await bob.poll()
            assert texts(bob) == [b"before", b"after"]

    asyncio.run(body())


def test_a_third_device_is_found_through_the_relays_409() -> None:
    async def body() -> None:
        async with world(["alice", "bob"]) as w:
            phone = await w.device("alice", "phone")
            laptop = await w.device("alice", "laptop")
            await w.device("bob", "phone")
            await phone.send_text("bob", b"one")
            tablet = await w.device("alice", "tablet")
            await phone.send_text("bob", b"two")
            await laptop.poll()
            await tablet.poll()
            assert texts(laptop) == [b"one", b"two"]
            assert texts(tablet) == [b"two"]
            assert phone.counters.device_set_retries >= 1

    asyncio.run(body())


def test_a_single_device_user_sends_no_sync_copies() -> None:
    async def body() -> None:
        async with world(["alice", "bob"]) as w:
            phone = await w.device("alice", "phone")
            await w.device("bob", "phone")
            for i in range(3):
                await phone.send_text("bob", b"msg %d" % i)
            assert phone.counters.sent_envelopes == 3  # bob's phone only, nothing to self

    asyncio.run(body())
