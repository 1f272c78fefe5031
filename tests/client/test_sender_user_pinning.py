"""With ``sibling_lookup`` (what the sharded fleet's devices use) an unknown sender's identity
is looked up for its whole user at once (``GET /v1/identities/{user}``, docs/client.md): the
sibling device's first SMX1 then needs no lookup of its own, a sibling whose identity is
already pinned is left to its own SMX1, and the receiving device never pins itself. Off (the
default, which the pinned live transcript is made with), each sender is looked up alone."""

from __future__ import annotations

import asyncio

from semafore.client import DeviceClient
from semafore.protocol.frame import is_smx1
from tests.client.helpers import world


def identity_lookups(client: DeviceClient) -> list[str]:
    """The paths of the identity lookups ``client`` made (wraps its fetch_identities)."""
    made: list[str] = []
    fetch = client.fetch_identities

    async def counted(user_id: str, device_id: str | None = None) -> dict[
            str, tuple[int, bytes, bytes]]:
        made.append(user_id + (f"/{device_id}" if device_id else ""))
        return await fetch(user_id, device_id)

    client.fetch_identities = counted  # type: ignore[method-assign]
    client.sibling_lookup = True
    return made


def test_one_lookup_pins_every_device_of_the_senders_user() -> None:
    async def body() -> None:
        async with world(["alice", "bob"]) as w:
            alice = await w.device("alice", "phone")
            bob_phone = await w.device("bob", "phone")
            bob_laptop = await w.device("bob", "laptop")
            lookups = identity_lookups(alice)
            first = await bob_phone.send_text("alice", b"from the phone")
            second = await bob_laptop.send_text("alice", b"from the laptop")
            assert is_smx1(first.envelopes["alice:phone"])
            assert is_smx1(second.envelopes["alice:phone"])
            await alice.poll()
            assert sorted(r.content.body for r in alice.inbox) == [
                b"from the laptop", b"from the phone"]
            assert lookups == ["bob"]  # the second SMX1 needed none
            for device in (bob_phone, bob_laptop):
                pinned = alice.device.known_identity(device.address)
                assert pinned is not None and pinned.ik == device.device.keys.identity.ik.public

    asyncio.run(body())


def test_a_sibling_already_pinned_is_not_rechecked_by_another_devices_lookup() -> None:
    async def body() -> None:
        async with world(["alice", "bob"]) as w:
            alice = await w.device("alice", "phone")
            bob_phone = await w.device("bob", "phone")
            bob_laptop = await w.device("bob", "laptop")
            alice.sibling_lookup = True
            stale = (bytes(32), bytes(32))  # what alice pinned for the laptop long ago
            alice.device.trust(bob_laptop.address, *stale, alice.clock.now())
            await bob_phone.send_text("alice", b"from the phone")
            await alice.poll()
            assert [r.content.body for r in alice.inbox] == [b"from the phone"]
            laptop = alice.device.known_identity(bob_laptop.address)
            assert laptop is not None and (laptop.ik, laptop.sik) == stale
            assert [e.kind for e in alice.events if e.kind.startswith("identity")] == []

    asyncio.run(body())


def test_a_sync_copy_pins_the_sibling_but_never_the_receiving_device_itself() -> None:
    async def body() -> None:
        async with world(["alice", "bob"]) as w:
            phone = await w.device("alice", "phone")
            tablet = await w.device("alice", "tablet")
            await w.device("bob", "phone")
            lookups = identity_lookups(phone)
            sent = await tablet.send_text("bob", b"hello bob")
            assert is_smx1(sent.envelopes["alice:phone"])  # the sync copy
            await phone.poll()
            assert [r.content.body for r in phone.inbox] == [b"hello bob"]
            assert lookups == ["alice"]
            assert phone.device.known_identity(tablet.address) is not None
            assert phone.device.known_identity(phone.address) is None
            assert "phone" not in phone.directory["alice"].devices

    asyncio.run(body())


def test_by_default_each_sender_is_looked_up_alone() -> None:
    async def body() -> None:
        async with world(["alice", "bob"]) as w:
            alice = await w.device("alice", "phone")
            bob_phone = await w.device("bob", "phone")
            bob_laptop = await w.device("bob", "laptop")
            lookups = identity_lookups(alice)
            alice.sibling_lookup = False
            await bob_phone.send_text("alice", b"from the phone")
            await bob_laptop.send_text("alice", b"from the laptop")
            await alice.poll()
            assert sorted(r.content.body for r in alice.inbox) == [
                b"from the laptop", b"from the phone"]
            assert sorted(lookups) == ["bob/laptop", "bob/phone"]

    asyncio.run(body())
