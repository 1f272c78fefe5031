"""The fleet: many real clients against the in-process relay, with a delivery ledger."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest

from semafore.protocol.address import AddressArgumentError, DeviceAddress
from simulator.fleet import Fleet


def test_a_device_is_named_by_its_address_or_its_one_text() -> None:
    typed = Fleet(seed=3, replicas=3, pins={DeviceAddress("a", "p"): 2})
    text = Fleet(seed=3, replicas=3, pins={"a:p": 2})
    for fleet in (typed, text):
        assert fleet.replica_of(DeviceAddress("a", "p")) == fleet.replica_of("a:p") == 2


@pytest.mark.parametrize("call", [
    lambda fleet: fleet.client("alice/phone"),
    lambda fleet: fleet.replica_of("alice/phone"),
    lambda fleet: asyncio.run(fleet.add_device("alice/phone", connect=False)),
])
def test_the_old_slash_spelling_is_refused_naming_the_form_to_use(
        call: Callable[[Fleet], object]) -> None:
    with pytest.raises(AddressArgumentError, match=r"'alice/phone'.*write 'alice:phone'"):
        call(Fleet(seed=3))


def test_a_slash_spelled_pin_is_refused_naming_pins() -> None:
    with pytest.raises(AddressArgumentError) as caught:
        Fleet(replicas=2, pins={"alice/phone": 1})
    assert caught.value.argument == "pins"


def test_fleet_of_users_with_several_devices_delivers_every_envelope() -> None:
    async def body() -> None:
        logging.getLogger("semafore.server").setLevel(logging.ERROR)
        fleet = Fleet(seed=5, network=False)
        await fleet.start(["org"])
        users = [f"u{i}" for i in range(6)]
        await fleet.add_org("org", users)
        refs = [f"{u}:d{j}" for u in users for j in range(2)]
        for ref in refs:
            await fleet.add_device(ref, connect=False)
        await fleet.connect_all()
        try:
            for i, ref in enumerate(refs):
                peer = users[(i // 2 + 1) % len(users)]
                await fleet.client(ref).send_text(peer, f"#{i}".encode())
            assert await fleet.quiesce(timeout=20) == {}
            # every message: 2 recipient devices + 1 sync copy
            assert len(fleet.ledger.envelopes) == 3 * len(refs)
            assert sum(len(v) for v in fleet.ledger.arrived.values()) == 3 * len(refs)
            for ref in refs:
                assert fleet.client(ref).counters.undecryptable == 0
        finally:
            await fleet.close()

    asyncio.run(body())


def test_relay_restart_on_the_same_store_keeps_queued_envelopes() -> None:
    async def body() -> None:
        logging.getLogger("semafore.server").setLevel(logging.ERROR)
        fleet = Fleet(seed=6, network=True)
        await fleet.start(["org"])
        await fleet.add_org("org", ["a", "b"])
        a = await fleet.add_device("a:p", connect=True)
        b = await fleet.add_device("b:p", connect=False)
        await a.wait_connected()
        try:
            await a.send_text("b", b"queued before restart")
            await fleet.restart_relay()
            b.connect()
            await b.wait_connected(20)
            assert await fleet.quiesce(timeout=20) == {}
            await a.wait_connected(20)
            await a.send_text("b", b"after restart")
            assert await fleet.quiesce(timeout=20) == {}
            assert [r.content.body for r in b.inbox] == [b"queued before restart", b"after restart"]
        finally:
            await fleet.close()

    asyncio.run(body())
