"""Device expectations as a specification (semafore/client/expect.py): a wait returns the
first unclaimed message that matches, never the same one twice, wakes on the arrival itself,
and a wait that cannot be met lists what did arrive."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from semafore.client import ClientEvent, DeviceClient, ManualClock, Received
from semafore.client.content import Content
from semafore.client.device import Device
from semafore.client.expect import Expectations, ExpectationTimeout
from semafore.protocol.address import AddressArgumentError, DeviceAddress
from semafore.protocol.entropy import SeededEntropy

USERS = ("alice", "carol")
TEXTS = ("hi", "bye")


def make_client() -> DeviceClient:
    """bob:phone, never connected: the relay URL is not contacted by these tests."""
    entropy = SeededEntropy("expectations")
    clock = ManualClock()
    device = Device.create("bob", "phone", entropy, clock.now(), opk_count=1)
    return DeviceClient(device, "acme", "http://127.0.0.1:9", entropy, clock)


CLIENT = make_client()


def arrive(client: DeviceClient, user: str, text: str, n: int) -> Received:
    """What DeviceClient._process does with a decrypted message: inbox, then notify."""
    received = Received(user, "phone", f"d{n}", "message",
                        Content(f"m{n}", "text", 0.0, text.encode()), 0.0)
    client.inbox.append(received)
    client.expectations.notify()
    return received


def fresh(client: DeviceClient) -> DeviceClient:
    client.inbox.clear()
    client.events.clear()
    client.expectations = Expectations(lambda: client.address)
    return client


senders = st.sampled_from(
    (None, *USERS, DeviceAddress("alice", "phone"), "carol:phone", "alice:laptop"))
texts = st.sampled_from((None, *TEXTS))


@settings(max_examples=60, deadline=None)
@given(arrivals=st.lists(st.tuples(st.sampled_from(USERS), st.sampled_from(TEXTS)), max_size=6),
       waits=st.lists(st.tuples(senders, texts), min_size=1, max_size=6))
def test_each_wait_claims_the_first_unclaimed_match(
        arrivals: list[tuple[str, str]],
        waits: list[tuple[str | DeviceAddress | None, str | None]]) -> None:
    client = fresh(CLIENT)
    for n, (user, text) in enumerate(arrivals):
        arrive(client, user, text, n)
    claimed: set[int] = set()

    async def run() -> None:
        for sender, text in waits:
            want = next((i for i, (u, t) in enumerate(arrivals) if i not in claimed
                         and sender in (None, u, f"{u}:phone", DeviceAddress(u, "phone"))
                         and (text is None or t == text)), None)
            if want is None:
                with pytest.raises(ExpectationTimeout) as missed:
                    await client.wait_for_message(sender=sender, text=text, timeout=0.001)
                unclaimed = [i for i in range(len(arrivals)) if i not in claimed]
                assert len(missed.value.arrived) == len(unclaimed)
                assert missed.value.field == "message"
            else:
                got = await client.wait_for_message(sender=sender, text=text, timeout=0.001)
                assert got.delivery_id == f"d{want}"
                claimed.add(want)

    asyncio.run(run())


def test_a_slash_spelled_sender_is_refused_at_once_not_waited_for() -> None:
    """``alice/phone`` would otherwise match nothing and wait out the whole timeout."""
    client = fresh(CLIENT)
    arrive(client, "alice", "hi", 0)

    async def run() -> None:
        with pytest.raises(AddressArgumentError, match=r"^sender: .*write 'alice:phone'"):
            await client.wait_for_message(sender="alice/phone", timeout=3600)
        with pytest.raises(AddressArgumentError) as caught:
            await client.wait_for_decryption_error(sender="alice/phone", timeout=3600)
        assert caught.value.argument == "sender"
        assert client.inbox and not client.expectations.claimed_messages

    asyncio.run(run())


def test_a_waiting_expectation_wakes_on_the_arrival_not_on_its_timeout() -> None:
    client = fresh(CLIENT)

    async def run() -> None:
        waiting = asyncio.create_task(
            client.wait_for_message(sender="alice", text="hi", timeout=3600))
        await asyncio.sleep(0)  # the wait checks, finds nothing, and parks
        assert not waiting.done()
        arrive(client, "carol", "hi", 0)  # not a match: the wait re-checks and parks again
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert not waiting.done()
        sent = arrive(client, "alice", "hi", 1)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert waiting.done() and waiting.result() is sent

    asyncio.run(run())


def test_a_decryption_error_is_matched_by_sender_and_spec_name() -> None:
    client = fresh(CLIENT)
    for kind, peer, detail in (("duplicate_frame", "alice:phone", "DuplicateMessage"),
                               ("undecryptable", "carol:phone", "BadMac"),
                               ("undecryptable", "alice:phone", "BadMac")):
        client.events.append(ClientEvent(kind, 0.0, peer, detail))

    async def run() -> None:
        first = await client.wait_for_decryption_error(sender="alice", error="BadMac",
                                                       timeout=0.001)
        assert (first.kind, first.peer) == ("undecryptable", "alice:phone")
        other = await client.wait_for_decryption_error(timeout=0.001)
        assert other.peer == "carol:phone"
        with pytest.raises(ExpectationTimeout) as missed:
            await client.wait_for_decryption_error(timeout=0.001)
        assert missed.value.field == "decryption_error"
        assert "event duplicate_frame from alice:phone: DuplicateMessage" in missed.value.arrived

    asyncio.run(run())


def test_the_timeout_message_reads_as_expected_versus_seen() -> None:
    client = fresh(CLIENT)
    for n in range(12):
        arrive(client, "alice", f"note {n}", n)

    async def run() -> None:
        with pytest.raises(ExpectationTimeout) as missed:
            await client.wait_for_message(sender="carol", text="hi", timeout=0.25)
        text = str(missed.value)
        assert text.startswith("bob:phone waited 0.25 s for a message from carol saying 'hi'; "
                               "it never came.\nwhat bob:phone saw instead:\n")
        assert "  - message from alice:phone (text) 'note 0' [message_id m0]" in text
        assert text.endswith("  ... and 2 more")
        assert isinstance(missed.value, TimeoutError)

    asyncio.run(run())


def test_a_timeout_must_be_positive() -> None:
    client = fresh(CLIENT)
    with pytest.raises(ValueError, match="timeout must be positive"):
        asyncio.run(client.wait_for_message(timeout=0))
