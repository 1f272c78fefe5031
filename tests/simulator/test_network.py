"""The network layer: a WebSocket-aware proxy per device that captures and breaks traffic."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from semafore.protocol.address import DeviceAddress
from simulator.fleet import Fleet

T = TypeVar("T")


def run(body: Callable[[], Awaitable[T]]) -> T:
    logging.getLogger("semafore.server").setLevel(logging.ERROR)
    return asyncio.run(body())  # type: ignore[arg-type]


async def fleet_with(devices: list[str], seed: int = 7) -> Fleet:
    fleet = Fleet(seed=seed, network=True, capture=True)
    await fleet.start(["org"])
    await fleet.add_org("org", sorted({DeviceAddress.parse(d).user for d in devices}))
    for ref in devices:
        await fleet.add_device(ref, connect=True)
    await fleet.connect_all()
    return fleet


async def until(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    """Wait for a condition (never a fixed sleep: the machine may be loaded)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


def bodies(fleet: Fleet, ref: str) -> list[bytes]:
    return [r.content.body for r in fleet.client(ref).inbox]


def test_capture_holds_the_envelopes_but_no_plaintext() -> None:
    async def body() -> None:
        fleet = await fleet_with(["alice:p", "bob:p"])
        try:
            canary = b"CANARY-7f3a9c1e5b2d4680"
            await fleet.client("alice:p").send_text("bob", canary)
            assert await fleet.quiesce() == {}
            assert bodies(fleet, "bob:p") == [canary]
            assert fleet.network is not None
            wire = b"".join(c.data for c in fleet.network.captured)
            envelope = fleet.ledger.envelopes[0][3]
            import base64

            assert base64.b64encode(envelope) in wire  # the adversary holds the envelope
            assert canary not in wire and base64.b64encode(canary)[:16] not in wire
            channels = {(c.device, c.direction, c.channel) for c in fleet.network.captured}
            assert ("alice:p", "up", "ws") in channels and ("bob:p", "down", "ws") in channels
        finally:
            await fleet.close()

    run(body)


def test_dropped_downstream_envelope_is_redelivered_after_reconnect() -> None:
    async def body() -> None:
        fleet = await fleet_with(["alice:p", "bob:p"])
        try:
            net = fleet.network
            assert net is not None
            net.add_fault("drop", device="bob:p", direction="down", count=1)
            await fleet.client("alice:p").send_text("bob", b"first")
            await until(lambda: net.links["bob:p"].stats.dropped == 1)
            assert await fleet.quiesce(timeout=0.5, idle=0.3)  # still missing
            net.add_fault("cut", device="bob:p")  # reconnect: the relay resends unacked
            net.heal("bob:p")
            assert await fleet.quiesce(timeout=15) == {}
            assert bodies(fleet, "bob:p") == [b"first"]
        finally:
            await fleet.close()

    run(body)


def test_dropped_upstream_send_falls_back_and_arrives_once() -> None:
    async def body() -> None:
        fleet = await fleet_with(["alice:p", "bob:p"])
        try:
            assert fleet.network is not None
            fleet.network.add_fault("drop", device="alice:p", direction="up", count=1)
            await fleet.client("alice:p").send_text("bob", b"resent over HTTP")
            assert await fleet.quiesce(timeout=10) == {}
            assert bodies(fleet, "bob:p") == [b"resent over HTTP"]
        finally:
            await fleet.close()

    run(body)


def test_duplicated_envelopes_are_shown_once() -> None:
    async def body() -> None:
        fleet = await fleet_with(["alice:p", "bob:p"])
        try:
            assert fleet.network is not None
            fleet.network.add_fault("duplicate", device="bob:p", direction="down")
            for i in range(3):
                await fleet.client("alice:p").send_text("bob", f"m{i}".encode())
            assert await fleet.quiesce(timeout=10) == {}
            bob = fleet.client("bob:p")
            await until(lambda: bob.counters.duplicates >= 3)
            assert bodies(fleet, "bob:p") == [b"m0", b"m1", b"m2"]
        finally:
            await fleet.close()

    run(body)


def test_reordered_envelopes_all_decrypt() -> None:
    async def body() -> None:
        fleet = await fleet_with(["alice:p", "bob:p"], seed=3)
        try:
            assert fleet.network is not None
            fleet.network.reorder_flush_s = 30.0  # the window fills before any flush
            alice = fleet.client("alice:p")
            await alice.send_text("bob", b"bootstrap")
            assert await fleet.quiesce() == {}
            fleet.network.add_fault("reorder", device="bob:p", direction="down", window=6)
            for i in range(6):
                await alice.send_text("bob", f"r{i}".encode())
            assert await fleet.quiesce(timeout=10) == {}
            got = bodies(fleet, "bob:p")[1:]
            assert sorted(got) == [f"r{i}".encode() for i in range(6)]
            assert got != sorted(got)  # seed 3 shuffles this window
        finally:
            await fleet.close()

    run(body)


def test_cut_refuses_connections_until_healed() -> None:
    async def body() -> None:
        fleet = await fleet_with(["alice:p", "bob:p"])
        try:
            net = fleet.network
            assert net is not None
            net.add_fault("cut")
            await asyncio.sleep(0.3)
            assert not fleet.client("bob:p").connected
            assert net.totals().refused + net.totals().cut > 0
            net.heal()
            await fleet.client("bob:p").wait_connected(15)
            await fleet.client("alice:p").wait_connected(15)
            await fleet.client("alice:p").send_text("bob", b"after the cut")
            assert await fleet.quiesce(timeout=10) == {}
        finally:
            await fleet.close()

    run(body)


def test_fault_draws_are_deterministic_per_seed() -> None:
    async def trial(seed: int) -> list[bytes]:
        fleet = await fleet_with(["alice:p", "bob:p"], seed=seed)
        try:
            assert fleet.network is not None
            alice = fleet.client("alice:p")
            await alice.send_text("bob", b"hello")
            await fleet.quiesce()
            fleet.network.add_fault("drop", device="bob:p", direction="down", probability=0.5)
            for i in range(12):
                await alice.send_text("bob", f"p{i}".encode())
            link = fleet.network.links["bob:p"]
            await until(lambda: len(bodies(fleet, "bob:p")) - 1 + link.stats.dropped == 12)
            return bodies(fleet, "bob:p")
        finally:
            await fleet.close()

    async def body() -> None:
        first, second = await trial(11), await trial(11)
        assert first == second and 1 < len(first) < 13

    run(body)
