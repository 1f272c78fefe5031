"""SPEC §4 session reset through a real relay: a device that lost its session state tells
the sender with a bare ``SRS1`` notice, and the sender re-bootstraps (SMX1) on its next
message, so the conversation works again without either side doing anything by hand."""

from __future__ import annotations

import asyncio

import pytest

from semafore.client import DeviceClient
from semafore.client.device import Device
from semafore.protocol.frame import is_drv1, is_smx1
from tests.client.helpers import world


def texts(client: DeviceClient) -> list[bytes]:
    return [r.content.body for r in client.inbox]


def kinds(client: DeviceClient) -> list[str]:
    return [e.kind for e in client.events]


@pytest.mark.cites("SPEC §4 r3", "SPEC §4 r4")
def test_device_that_lost_its_session_gets_a_working_one_after_the_reset_notice() -> None:
    async def body() -> None:
        async with world(["alice", "bob"]) as w:
            alice = await w.device("alice", "phone")
            bob = await w.device("bob", "phone")
            backup = bob.device.serialize()  # taken before any session existed
            await alice.send_text("bob", b"one")
            await bob.poll()
            await bob.send_text("alice", b"back")
            await alice.poll()
            # Bob restores the old backup: his session with Alice is gone, his identity is not.
            bob.device = Device.parse(backup)
            bob.inbox.clear()
            lost = await alice.send_text("bob", b"lost")
            assert is_drv1(lost.envelopes["bob:phone"])  # Alice still thinks all is well
            await bob.poll()
            assert texts(bob) == [] and "undecryptable" in kinds(bob)
            assert "reset_sent" in kinds(bob), bob.events
            assert bob.counters.resets_sent == 1
            await alice.poll()  # the bare SRS1 notice: Alice archives the session
            assert "reset_honoured" in kinds(alice), kinds(alice)
            again = await alice.send_text("bob", b"again")
            assert is_smx1(again.envelopes["bob:phone"])  # a fresh bootstrap
            await bob.poll()
            assert texts(bob) == [b"again"]
            reply = await bob.send_text("alice", b"working")
            await alice.poll()
            assert texts(alice) == [b"back", b"working"]
            assert is_drv1(reply.envelopes["alice:phone"])

    asyncio.run(body())


def test_reset_notice_reaches_only_the_named_device_and_others_never_see_it() -> None:
    async def body() -> None:
        async with world(["alice", "bob"]) as w:
            alice = await w.device("alice", "phone")
            tablet = await w.device("alice", "tablet")
            bob = await w.device("bob", "phone")
            backup = bob.device.serialize()
            await alice.send_text("bob", b"one")
            await bob.poll()
            await bob.send_text("alice", b"back")
            await alice.poll()
            await tablet.poll()
            bob.device = Device.parse(backup)
            await alice.send_text("bob", b"lost")
            await tablet.poll()  # the sync copy of "lost"
            await bob.poll()
            assert bob.counters.resets_sent == 1
            raw = await tablet.http.json("GET", "/v1/messages")
            assert raw["envelopes"] == []  # the notice was addressed to alice:phone only
            raw = await alice.http.json("GET", "/v1/messages")
            assert [e["kind"] for e in raw["envelopes"]] == ["reset"]

    asyncio.run(body())
