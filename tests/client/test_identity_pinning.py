"""Pinning an unknown sender (TOFU) uses the identity-only lookup: it claims none of the
sender's one-time prekeys, which stay for peers that really bootstrap with them."""

from __future__ import annotations

import asyncio

from semafore.client import DeviceClient
from semafore.client.device import Device
from semafore.protocol.frame import is_smx1
from tests.client.helpers import world


async def relay_opk_count(client: DeviceClient) -> int:
    count = await client.http.json("GET", "/v1/keys")
    return int(count["opk_count"])


def test_pinning_an_unknown_senders_identity_claims_none_of_its_prekeys() -> None:
    async def body() -> None:
        async with world(["alice", "bob"]) as w:
            alice = await w.device("alice", "phone")
            bob = await w.device("bob", "phone")
            before = await relay_opk_count(bob)
            sent = await bob.send_text("alice", b"hi")  # bob claims one of alice's OPKs
            assert is_smx1(sent.envelopes["alice:phone"])
            assert alice.device.known_identity("bob:phone") is None
            await alice.poll()
            assert [r.content.body for r in alice.inbox] == [b"hi"]
            pinned = alice.device.known_identity("bob:phone")
            assert pinned is not None and pinned.ik == bob.device.keys.identity.ik.public
            assert await relay_opk_count(bob) == before
            assert alice.counters.bundles_fetched == 0

    asyncio.run(body())


def test_reset_to_a_device_missing_from_the_directory_claims_no_prekey() -> None:
    async def body() -> None:
        async with world(["alice", "bob"]) as w:
            alice = await w.device("alice", "phone")
            bob = await w.device("bob", "phone")
            backup = bob.device.serialize()
            await alice.send_text("bob", b"one")
            await bob.poll()
            await bob.send_text("alice", b"back")
            await alice.poll()
            bob.device = Device.parse(backup)
            bob.directory.clear()  # a restored device knows nothing about alice either
            before = await relay_opk_count(alice)
            await alice.send_text("bob", b"lost")
            await bob.poll()
            assert bob.counters.resets_sent == 1
            assert await relay_opk_count(alice) == before
            await alice.poll()
            assert alice.counters.resets_honoured == 1

    asyncio.run(body())
